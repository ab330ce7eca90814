/*
 * sendFrame(ifname, frame): one Ethernet frame out of an interface (rhumb_packet.h).
 * A socket per call: announcements are one per address move, and a socket kept open
 * would be bound to one namespace and one interface. The send does not block (a raw
 * socket queues the frame to the device, or fails).
 */
#include <errno.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rhumb_napi_util.h"
#include "rhumb_netns.h"
#include "rhumb_packet.h"

int rhumb_packet_send(unsigned ifindex, const void *frame, size_t len, const char **syscall)
{
	/* SOCK_RAW: the frame carries its own header; the address names only the interface. */
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = (int)ifindex };
	ssize_t n;
	int fd, err = 0;

	if (len < RHUMB_PACKET_MIN || len > RHUMB_PACKET_MAX)
		return -EINVAL;
	/* Protocol 0: this socket sends only, so the kernel queues it no received frames. */
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*syscall = "socket";
		return -errno;
	}
	n = sendto(fd, frame, len, MSG_DONTWAIT, (const struct sockaddr *)&to, sizeof(to));
	if (n < 0) {
		err = -errno;
		*syscall = "sendto";
	} else if ((size_t)n != len) {
		err = -EMSGSIZE;
		*syscall = "sendto";
	}
	close(fd);
	return err;
}

static napi_value js_send_frame(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	char name[IF_NAMESIZE + 8], what[96];
	size_t name_len = 0, len = 0;
	void *frame = NULL;
	bool is_buf = false;
	const char *syscall = "if_nametoindex";
	unsigned idx;
	int err;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2 || napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &name_len) != napi_ok) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "sendFrame(ifname, frame): ifname must be a string");
		return NULL;
	}
	if (strlen(name) != name_len || !rhumb_ifname_ok(name)) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "sendFrame: ifname is not an interface name (1 to 15 characters)");
		return NULL;
	}
	if (napi_is_buffer(env, argv[1], &is_buf) != napi_ok || !is_buf) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "sendFrame(ifname, frame): frame must be a Buffer");
		return NULL;
	}
	RHUMB_CHECK(env, napi_get_buffer_info(env, argv[1], &frame, &len));
	if (len < RHUMB_PACKET_MIN || len > RHUMB_PACKET_MAX) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "sendFrame: a frame is 14 to 9018 bytes, Ethernet header included");
		return NULL;
	}
	snprintf(what, sizeof(what), "sendFrame('%s')", name);
	errno = 0;
	idx = if_nametoindex(name);
	if (idx == 0) {
		rhumb_throw_sys(env, what, syscall, errno ? errno : ENODEV, NULL);
		return NULL;
	}
	err = rhumb_packet_send(idx, frame, len, &syscall);
	if (err < 0) {
		rhumb_throw_sys(env, what, syscall, -err, NULL);
		return NULL;
	}
	return NULL;
}

napi_status rhumb_packet_register(napi_env env, napi_value exports)
{
	napi_value fn;
	napi_status s = napi_create_function(env, "sendFrame", NAPI_AUTO_LENGTH, js_send_frame, NULL, &fn);
	return s == napi_ok ? napi_set_named_property(env, exports, "sendFrame", fn) : s;
}
