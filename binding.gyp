{
  "targets": [
    {
      "target_name": "rhumb_native",
      "sources": [
        "native/src/addon.c",
        "native/src/csum.c",
        "native/src/rtnl.c",
        "native/src/rtnl_link.c",
        "native/src/link_unlist.c",
        "native/src/rtnl_edge.c",
        "native/src/netns.c",
        "native/src/nft.c",
        "native/src/napi_util.c",
        "native/src/netlink.c",
        "native/src/netlink_requests.c",
        "native/src/nflog.c",
        "native/src/nflog_parse.c",
        "native/src/packet.c",
        "native/src/links.c",
        "native/src/links_args.c",
        "native/src/links_edge.c",
        "native/src/links_work.c",
        "native/src/vxlan.c",
        "native/src/fp_engine.c",
        "native/src/fp_tx.c",
        "native/src/fp_rx.c",
        "native/src/fp_park.c",
        "native/src/fp_control.c",
        "native/src/fp_tap.c",
        "native/src/fastpath.c",
        "native/src/svp_answer.c",
        "native/src/svp_index.c",
        "native/src/svp_conn.c",
        "native/src/svp_front.c"
      ],
      "include_dirs": ["native/include"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"],
      "cflags_c": ["-std=gnu11"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "libraries": ["-lnftables"]
    }
  ]
}
