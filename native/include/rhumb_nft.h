#ifndef RHUMB_NFT_H
#define RHUMB_NFT_H
/*
 * nftables through libnftables, in process: a text in `nft -f` syntax is parsed and sent
 * to the kernel as one netlink batch (NFNL_MSG_BATCH_BEGIN ... END), so it applies whole
 * or not at all, and no process is spawned.
 */
#include <stddef.h>

/*
 * Applies text inside the network namespace nsfd (-1: the caller's). Returns 0; -1 when
 * nftables refused it (its message in err); -errno when the namespace could not be entered.
 */
int rhumb_nft_apply(int nsfd, const char *text, char *err, size_t errlen);

/* Like rhumb_nft_apply for a listing command ("list tables"): its output in out (malloc'd). */
int rhumb_nft_list(int nsfd, const char *cmd, char **out, char *err, size_t errlen);

#endif
