/*
 * Node-API binding of the userspace fast path (the engine: rhumb_fp.h). See
 * src/dataplane/fastpath.ts for the typed face.
 *
 * class FastPath
 *   new FastPath({ underlayIp: Buffer(4), port, underlayMtu, tso, uso, gso, gro, coalesce, mmsg, threads }, onMiss)
 *                       onMiss(kind, vnet, key: Buffer(16)) on the JS thread (threadsafe function)
 *   addNic({ netns, ifname, mac: Buffer(6), ip: Buffer(4), vnet, vlan, mtu, allowMac, allowIp, sharedMac, persist, reattach }) -> id
 *   removeNic(id)
 *   update(records: Buffer)          32-byte records, all or nothing (rhumb_fp.h: fp_update)
 *   entries(vnet) -> Buffer          the vnet's remote l2set and l3set records
 *   setPeers(addresses: Buffer)      4-byte underlay addresses VXLAN is accepted from
 *   counters(id?) -> Float64Array    per NIC, or the engine's when id is omitted
 *   inject(vnet, frame: Buffer)      a gratuitous ARP into the vnet's local TAPs
 *   offloads() -> { vnethdr, tso, …, probedGro }
 *   close()
 *   static counterNames() -> string[]
 */
#include <linux/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rhumb_fastpath.h"
#include "rhumb_fp.h"
#include "rhumb_napi.h"
#include "rhumb_vxlan.h"

/* The JavaScript object's native half: the engine and the miss callback. */
struct js_fp {
	struct fp *f;
	napi_threadsafe_function tsfn;
};

struct upcall { uint8_t kind; uint32_t vnet; uint8_t key[16]; };

static void throw_errno(napi_env env, const char *what, int err)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
	napi_throw_error(env, rhumb_errno_code(err), msg);
}

/* On the forwarding thread: queue the miss for the JS thread. */
static void on_upcall(void *ctx, uint8_t kind, uint32_t vnet, const uint8_t key[16])
{
	struct js_fp *j = ctx;
	struct upcall *u = malloc(sizeof(*u));
	if (!u)
		return;
	u->kind = kind;
	u->vnet = vnet;
	memcpy(u->key, key, 16);
	if (napi_call_threadsafe_function(j->tsfn, u, napi_tsfn_nonblocking) != napi_ok)
		free(u);
}

static void call_js(napi_env env, napi_value cb, void *ctx, void *data)
{
	struct upcall *u = data;
	napi_value argv[3], undef;
	void *bytes;
	if (env && cb) {
		napi_create_uint32(env, u->kind, &argv[0]);
		napi_create_uint32(env, u->vnet, &argv[1]);
		if (napi_create_buffer(env, 16, &bytes, &argv[2]) == napi_ok) {
			memcpy(bytes, u->key, 16);
			napi_get_undefined(env, &undef);
			napi_call_function(env, undef, cb, 3, argv, NULL);
		}
	}
	free(u);
}

/* Stops the engine, then the miss callback (no upcall can follow fp_close). */
static void js_fp_close(struct js_fp *j)
{
	if (j->f)
		fp_close(j->f);
	if (j->tsfn) {
		napi_release_threadsafe_function(j->tsfn, napi_tsfn_abort);
		j->tsfn = NULL;
	}
}

static void js_fp_free(struct js_fp *j)
{
	js_fp_close(j);
	if (j->f)
		fp_destroy(j->f);
	free(j);
}

static void cleanup_hook(void *arg)
{
	js_fp_close(arg);
}

static void finalize(napi_env env, void *data, void *hint)
{
	napi_remove_env_cleanup_hook(env, cleanup_hook, data);
	js_fp_free(data);
}

/* ---- arguments ------------------------------------------------------------------------ */

static bool get_prop(napi_env env, napi_value obj, const char *name, napi_value *out)
{
	bool has = false;
	if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has)
		return false;
	return napi_get_named_property(env, obj, name, out) == napi_ok;
}

static bool opt_bool(napi_env env, napi_value obj, const char *name, bool dflt)
{
	napi_value v;
	bool b;
	if (!get_prop(env, obj, name, &v) || napi_get_value_bool(env, v, &b) != napi_ok)
		return dflt;
	return b;
}

static uint32_t opt_u32(napi_env env, napi_value obj, const char *name, uint32_t dflt)
{
	napi_value v;
	uint32_t u;
	if (!get_prop(env, obj, name, &v) || napi_get_value_uint32(env, v, &u) != napi_ok)
		return dflt;
	return u;
}

static bool buf_arg(napi_env env, napi_value v, size_t want, uint8_t *out)
{
	bool is = false;
	void *d;
	size_t n;
	if (napi_is_buffer(env, v, &is) != napi_ok || !is || napi_get_buffer_info(env, v, &d, &n) != napi_ok || n != want)
		return false;
	memcpy(out, d, want);
	return true;
}

/* A NIC's address: 16 bytes (IPv6 or IPv4-mapped) or 4 (IPv4), as a 16-byte table key. */
static bool ip_key_arg(napi_env env, napi_value v, uint8_t out[16])
{
	uint8_t ip4[4];
	if (buf_arg(env, v, 16, out))
		return true;
	if (!buf_arg(env, v, 4, ip4))
		return false;
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, ip4, 4);
	return true;
}

/* A Buffer argument of any length whose length is a multiple of `unit`. */
static bool buf_units(napi_env env, napi_value v, size_t unit, uint8_t **data, size_t *len)
{
	bool is = false;
	return napi_is_buffer(env, v, &is) == napi_ok && is && napi_get_buffer_info(env, v, (void **)data, len) == napi_ok &&
	       *len % unit == 0;
}

/* The engine behind `this`, or NULL (thrown) when it is not a FastPath or is closed. */
static struct fp *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv)
{
	napi_value self;
	struct js_fp *j = NULL;
	if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok || napi_unwrap(env, self, (void **)&j) != napi_ok || !j) {
		napi_throw_error(env, "ERR_NAPI", "FastPath: not a FastPath");
		return NULL;
	}
	if (fp_is_closed(j->f)) {
		napi_throw_error(env, "ERR_CLOSED", "FastPath: closed");
		return NULL;
	}
	return j->f;
}

static bool nic_arg(napi_env env, struct fp *f, napi_value v, int *id)
{
	int32_t i;
	if (napi_get_value_int32(env, v, &i) != napi_ok || !fp_nic_exists(f, i)) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "FastPath: unknown NIC id");
		return false;
	}
	*id = i;
	return true;
}

/* ---- class FastPath --------------------------------------------------------------------- */

static napi_value js_ctor(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], self, v, name;
	struct fp_options o = { 0 };
	struct fp_error e = { 0 };
	struct js_fp *j;
	uint32_t mtu;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
	if (argc < 2) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "FastPath(options, onMiss)");
		return NULL;
	}
	if (!get_prop(env, argv[0], "underlayIp", &v) || !buf_arg(env, v, 4, o.underlay_ip)) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "FastPath: underlayIp must be a 4-byte Buffer");
		return NULL;
	}
	o.port = (uint16_t)opt_u32(env, argv[0], "port", RV_VXLAN_PORT);
	mtu = opt_u32(env, argv[0], "underlayMtu", 1500);
	o.underlay_mtu = (uint16_t)(mtu > 65535 ? 65535 : mtu); /* loopback: 65536 */
	if (o.underlay_mtu < 576 + RV_VXLAN_OVERHEAD) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "FastPath: underlayMtu too small");
		return NULL;
	}
	o.tso = opt_bool(env, argv[0], "tso", true);
	o.uso = opt_bool(env, argv[0], "uso", true);
	o.gso = opt_bool(env, argv[0], "gso", true);
	o.gro = opt_bool(env, argv[0], "gro", true);
	o.coalesce = opt_bool(env, argv[0], "coalesce", true);
	o.mmsg = opt_bool(env, argv[0], "mmsg", true);
	o.threads = (int)opt_u32(env, argv[0], "threads", FP_THREADS_SPLIT);
	if (o.threads > FP_THREADS_ONE) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "FastPath: threads must be 0 (split) or 1 (one)");
		return NULL;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		napi_throw_error(env, "ENOMEM", "FastPath: out of memory");
		return NULL;
	}
	napi_create_string_utf8(env, "rhumb-fastpath-miss", NAPI_AUTO_LENGTH, &name);
	if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &j->tsfn) != napi_ok) {
		js_fp_free(j);
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "FastPath: onMiss must be a function");
		return NULL;
	}
	j->f = fp_open(&o, on_upcall, j, &e);
	if (!j->f) {
		char what[128];
		js_fp_free(j);
		snprintf(what, sizeof(what), "FastPath: %s", e.step);
		throw_errno(env, what, e.err);
		return NULL;
	}
	if (napi_wrap(env, self, j, finalize, NULL, NULL) != napi_ok) {
		js_fp_free(j);
		napi_throw_error(env, "ERR_NAPI", "FastPath: wrap failed");
		return NULL;
	}
	napi_add_env_cleanup_hook(env, cleanup_hook, j);
	return self;
}

static napi_value js_add_nic(napi_env env, napi_callback_info info)
{
	size_t argc = 1, n;
	napi_value argv[1], v, out;
	struct fp *f = unwrap(env, info, &argc, argv);
	struct fp_nic_spec s = { 0 };
	struct fp_error e = { 0 };
	char netns[512] = "", ifname[64] = "", what[128];
	int id;

	if (!f)
		return NULL;
	if (argc < 1 || !get_prop(env, argv[0], "mac", &v) || !buf_arg(env, v, 6, s.mac) ||
	    !get_prop(env, argv[0], "ip", &v) || !ip_key_arg(env, v, s.ip) || !get_prop(env, argv[0], "ifname", &v) ||
	    napi_get_value_string_utf8(env, v, ifname, sizeof(ifname), &n) != napi_ok || n == 0 || n > IFNAMSIZ - 1) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "addNic: mac (6-byte Buffer), ip (4- or 16-byte Buffer) and ifname are required");
		return NULL;
	}
	if (get_prop(env, argv[0], "netns", &v) && napi_get_value_string_utf8(env, v, netns, sizeof(netns), &n) != napi_ok) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "addNic: netns must be a path");
		return NULL;
	}
	s.netns = netns;
	s.ifname = ifname;
	{
		uint32_t mtu;
		s.mtu = get_prop(env, argv[0], "mtu", &v) && napi_get_value_uint32(env, v, &mtu) == napi_ok ? (int)(uint16_t)mtu : -1;
	}
	s.vnet = opt_u32(env, argv[0], "vnet", 0);
	s.vlan = (uint16_t)opt_u32(env, argv[0], "vlan", 0);
	s.allow_mac = opt_bool(env, argv[0], "allowMac", false);
	s.allow_ip = opt_bool(env, argv[0], "allowIp", false);
	s.shared_mac = opt_bool(env, argv[0], "sharedMac", false);
	s.persist = opt_bool(env, argv[0], "persist", false);
	s.reattach = opt_bool(env, argv[0], "reattach", false);
	id = fp_add_nic(f, &s, &e);
	switch (id) {
	case FP_ESYS:
		snprintf(what, sizeof(what), "addNic %s: %s", ifname, e.step);
		throw_errno(env, what, e.err);
		return NULL;
	case FP_ETOO_MANY:
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "addNic: too many NICs");
		return NULL;
	case FP_EFULL:
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "addNic: tables full");
		return NULL;
	}
	RHUMB_CHECK(env, napi_create_int32(env, id, &out));
	return out;
}

static napi_value js_remove_nic(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	struct fp *f = unwrap(env, info, &argc, argv);
	int id;
	if (!f || argc < 1 || !nic_arg(env, f, argv[0], &id))
		return NULL;
	if (fp_remove_nic(f, id) != FP_OK)
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "FastPath: unknown NIC id");
	return NULL;
}

static napi_value js_update(napi_env env, napi_callback_info info)
{
	size_t argc = 1, len;
	napi_value argv[1];
	struct fp *f = unwrap(env, info, &argc, argv);
	uint8_t *b;
	if (!f)
		return NULL;
	if (argc < 1 || !buf_units(env, argv[0], FP_RECORD, &b, &len)) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "update: records must be a Buffer of 32-byte records");
		return NULL;
	}
	switch (fp_update(f, b, len)) {
	case FP_EBADOP:
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "update: unknown operation");
		break;
	case FP_EFULL:
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "update: tables full");
		break;
	}
	return NULL;
}

static napi_value js_entries(napi_env env, napi_callback_info info)
{
	size_t argc = 1, len;
	napi_value argv[1], out;
	struct fp *f = unwrap(env, info, &argc, argv);
	uint32_t vnet;
	uint8_t *records;
	void *b;
	if (!f)
		return NULL;
	if (argc < 1 || napi_get_value_uint32(env, argv[0], &vnet) != napi_ok) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "entries(vnet)");
		return NULL;
	}
	if (fp_entries(f, vnet, &records, &len) != FP_OK) {
		napi_throw_error(env, "ENOMEM", "entries: out of memory");
		return NULL;
	}
	if (napi_create_buffer_copy(env, len, records, &b, &out) != napi_ok) {
		free(records);
		rhumb_throw_pending_or(env, "entries: napi_create_buffer_copy failed");
		return NULL;
	}
	free(records);
	return out;
}

static napi_value js_set_peers(napi_env env, napi_callback_info info)
{
	size_t argc = 1, len;
	napi_value argv[1];
	struct fp *f = unwrap(env, info, &argc, argv);
	uint8_t *b;
	if (!f)
		return NULL;
	if (argc < 1 || !buf_units(env, argv[0], 4, &b, &len)) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "setPeers: addresses must be a Buffer of 4-byte IPv4 addresses");
		return NULL;
	}
	switch (fp_set_peers(f, b, len / 4)) {
	case FP_ETOO_MANY:
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "setPeers: too many addresses");
		break;
	case FP_ENOMEM:
		napi_throw_error(env, "ENOMEM", "setPeers: out of memory");
		break;
	}
	return NULL;
}

static napi_value js_counters(napi_env env, napi_callback_info info)
{
	size_t argc = 1, n = fp_counter_count();
	napi_value argv[1], ab, out;
	struct fp *f = unwrap(env, info, &argc, argv);
	napi_valuetype t = napi_undefined;
	uint64_t c[64];
	double *d;
	int id = -1;
	if (!f)
		return NULL;
	if (argc >= 1)
		napi_typeof(env, argv[0], &t);
	if (t == napi_number && !nic_arg(env, f, argv[0], &id))
		return NULL;
	if (n > sizeof(c) / sizeof(c[0]) || fp_counters(f, id, c) != FP_OK) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "FastPath: unknown NIC id");
		return NULL;
	}
	RHUMB_CHECK(env, napi_create_arraybuffer(env, sizeof(double) * n, (void **)&d, &ab));
	for (size_t i = 0; i < n; i++)
		d[i] = (double)c[i];
	RHUMB_CHECK(env, napi_create_typedarray(env, napi_float64_array, n, ab, 0, &out));
	return out;
}

static napi_value js_inject(napi_env env, napi_callback_info info)
{
	size_t argc = 2, len;
	napi_value argv[2];
	struct fp *f = unwrap(env, info, &argc, argv);
	uint32_t vnet;
	uint8_t *b;
	if (!f)
		return NULL;
	if (argc < 2 || napi_get_value_uint32(env, argv[0], &vnet) != napi_ok || !buf_units(env, argv[1], 1, &b, &len) ||
	    len < RV_ETH_HLEN) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "inject(vnet, frame: Buffer)");
		return NULL;
	}
	fp_inject(f, vnet, b, len);
	return NULL;
}

static napi_value js_offloads(napi_env env, napi_callback_info info)
{
	size_t argc = 0;
	napi_value out, v;
	struct fp *f = unwrap(env, info, &argc, NULL);
	struct fp_offloads o;
	const char *names[] = { "vnethdr", "tso", "uso", "gso", "gro", "coalesce", "mmsg",
				"probedTso", "probedUso", "probedGso", "probedGro", "oneThread" };
	bool vals[12];
	if (!f)
		return NULL;
	fp_get_offloads(f, &o);
	vals[0] = o.vnethdr; vals[1] = o.tso; vals[2] = o.uso; vals[3] = o.gso; vals[4] = o.gro;
	vals[5] = o.coalesce; vals[6] = o.mmsg; vals[7] = o.probed_tso; vals[8] = o.probed_uso;
	vals[9] = o.probed_gso; vals[10] = o.probed_gro; vals[11] = o.one_thread;
	RHUMB_CHECK(env, napi_create_object(env, &out));
	for (int i = 0; i < 12; i++) {
		RHUMB_CHECK(env, napi_get_boolean(env, vals[i], &v));
		RHUMB_CHECK(env, napi_set_named_property(env, out, names[i], v));
	}
	return out;
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
	napi_value self;
	struct js_fp *j = NULL;
	size_t argc = 0;
	if (napi_get_cb_info(env, info, &argc, NULL, &self, NULL) != napi_ok || napi_unwrap(env, self, (void **)&j) != napi_ok || !j)
		return NULL;
	js_fp_close(j);
	return NULL;
}

static napi_value js_counter_names(napi_env env, napi_callback_info info)
{
	napi_value arr, s;
	uint32_t n = (uint32_t)fp_counter_count();
	RHUMB_CHECK(env, napi_create_array_with_length(env, n, &arr));
	for (uint32_t i = 0; i < n; i++) {
		RHUMB_CHECK(env, napi_create_string_utf8(env, fp_counter_names[i], NAPI_AUTO_LENGTH, &s));
		RHUMB_CHECK(env, napi_set_element(env, arr, i, s));
	}
	return arr;
}

napi_status rhumb_fastpath_register(napi_env env, napi_value exports)
{
	napi_property_descriptor methods[] = {
		{ "addNic", NULL, js_add_nic, NULL, NULL, NULL, napi_default, NULL },
		{ "removeNic", NULL, js_remove_nic, NULL, NULL, NULL, napi_default, NULL },
		{ "update", NULL, js_update, NULL, NULL, NULL, napi_default, NULL },
		{ "entries", NULL, js_entries, NULL, NULL, NULL, napi_default, NULL },
		{ "setPeers", NULL, js_set_peers, NULL, NULL, NULL, napi_default, NULL },
		{ "counters", NULL, js_counters, NULL, NULL, NULL, napi_default, NULL },
		{ "inject", NULL, js_inject, NULL, NULL, NULL, napi_default, NULL },
		{ "offloads", NULL, js_offloads, NULL, NULL, NULL, napi_default, NULL },
		{ "close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL },
		{ "counterNames", NULL, js_counter_names, NULL, NULL, NULL, napi_static, NULL },
	};
	napi_value cls;
	napi_status st = napi_define_class(env, "FastPath", NAPI_AUTO_LENGTH, js_ctor, NULL,
					   sizeof(methods) / sizeof(methods[0]), methods, &cls);
	if (st != napi_ok)
		return st;
	return napi_set_named_property(env, exports, "FastPath", cls);
}
