/*
 * The mapping index as the native SVP front end sees it (rhumb_svp_front.h): per index
 * state, the storage of its three hash tables (the JS U32Tables' own typed arrays) and its
 * nodes' underlay addresses; per MappingIndex, which state answers now. JS registers
 * storage when a table is created or grown and underlays when they change, synchronously
 * on the main thread, so the next lookup sees them.
 *
 *   svpTablesCreate() -> tables            svpTablesStorage(tables, which, keys, vals, used)
 *   svpTablesUnderlay(tables, node, ip16 | null, port)
 *   svpIndexCreate() -> index              svpIndexUse(index, tables)
 */
#include "rhumb_svp_front.h"
#include "rhumb_napi.h"

#include <stdlib.h>
#include <string.h>

/* The typed arrays a state's tables live in, held so C never reads freed storage. */
struct svp_tables_box {
	struct svp_tables t; /* first: the box is used as a struct svp_tables */
	napi_ref arrays[3][3];
};

static void drop_arrays(napi_env env, napi_ref *refs)
{
	for (int i = 0; i < 3; i++)
		if (refs[i]) {
			napi_delete_reference(env, refs[i]);
			refs[i] = NULL;
		}
}

static void tables_finalize(napi_env env, void *data, void *hint)
{
	struct svp_tables_box *b = data;
	for (int w = 0; w < 3; w++)
		drop_arrays(env, b->arrays[w]);
	free(b->t.nodes);
	free(b);
}

static void index_finalize(napi_env env, void *data, void *hint)
{
	struct svp_index *ix = data;
	if (ix->cur_ref)
		napi_delete_reference(env, ix->cur_ref);
	free(ix);
}

static bool get_external(napi_env env, napi_value v, void **out, const char *what)
{
	napi_valuetype t;
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, out) != napi_ok ||
	    !*out) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
		return false;
	}
	return true;
}

bool svp_get_tables(napi_env env, napi_value v, struct svp_tables **out)
{
	return get_external(env, v, (void **)out, "expected SVP tables (svpTablesCreate)");
}

bool svp_get_index(napi_env env, napi_value v, struct svp_index **out)
{
	return get_external(env, v, (void **)out, "expected an SVP index (svpIndexCreate)");
}

static napi_value js_tables_create(napi_env env, napi_callback_info info)
{
	struct svp_tables_box *t = calloc(1, sizeof(*t));
	napi_value out;

	if (!t) {
		napi_throw_error(env, "ENOMEM", "svpTablesCreate: out of memory");
		return NULL;
	}
	if (napi_create_external(env, t, tables_finalize, NULL, &out) != napi_ok) {
		free(t);
		rhumb_throw_pending_or(env, "svpTablesCreate: napi_create_external failed");
		return NULL;
	}
	return out;
}

/* A typed array's data and element count, checked to be of the wanted kind. */
static bool typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len)
{
	bool is = false;
	napi_typedarray_type type;

	if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
	    napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) != napi_ok || type != want) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "svpTablesStorage: expected (Uint32Array, Uint32Array, Uint8Array)");
		return false;
	}
	return true;
}

static napi_value js_tables_storage(napi_env env, napi_callback_info info)
{
	size_t argc = 5;
	napi_value argv[5];
	struct svp_tables *t;
	uint32_t which;
	void *keys, *vals, *used;
	size_t nk, nv, cap;
	struct svp_u32table *tab;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 5 || !svp_get_tables(env, argv[0], &t))
		return argc < 5 ? (napi_throw_type_error(env, NULL, "svpTablesStorage: 5 arguments"), NULL) : NULL;
	if (napi_get_value_uint32(env, argv[1], &which) != napi_ok || which > SVP_TABLE_IP6) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "svpTablesStorage: which must be 0, 1 or 2");
		return NULL;
	}
	if (!typed(env, argv[2], napi_uint32_array, &keys, &nk) || !typed(env, argv[3], napi_uint32_array, &vals, &nv) ||
	    !typed(env, argv[4], napi_uint8_array, &used, &cap))
		return NULL;
	if (cap == 0 || (cap & (cap - 1)) != 0 || nk % cap != 0 || nv % cap != 0 || nk == 0 || nv == 0) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "svpTablesStorage: capacity must be a power of two and the arrays multiples of it");
		return NULL;
	}
	tab = which == SVP_TABLE_MACS ? &t->macs : which == SVP_TABLE_IP4 ? &t->ip4 : &t->ip6;
	{
		napi_ref *refs = ((struct svp_tables_box *)t)->arrays[which], fresh[3] = { NULL, NULL, NULL };
		for (int i = 0; i < 3; i++)
			if (napi_create_reference(env, argv[2 + i], 1, &fresh[i]) != napi_ok) {
				drop_arrays(env, fresh);
				rhumb_throw_pending_or(env, "svpTablesStorage: napi_create_reference failed");
				return NULL;
			}
		drop_arrays(env, refs);
		memcpy(refs, fresh, sizeof(fresh));
	}
	tab->keys = keys;
	tab->vals = vals;
	tab->used = used;
	tab->mask = (uint32_t)(cap - 1);
	tab->kw = (uint32_t)(nk / cap);
	tab->vw = (uint32_t)(nv / cap);
	return NULL;
}

static napi_value js_tables_underlay(napi_env env, napi_callback_info info)
{
	size_t argc = 4;
	napi_value argv[4];
	struct svp_tables *t;
	uint32_t node, port = 0;
	napi_valuetype vt = napi_undefined;
	void *ip = NULL;
	size_t iplen = 0;
	bool is_buf = false;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 4) {
		napi_throw_type_error(env, NULL, "svpTablesUnderlay: 4 arguments");
		return NULL;
	}
	if (!svp_get_tables(env, argv[0], &t))
		return NULL;
	if (napi_get_value_uint32(env, argv[1], &node) != napi_ok || node >= (1u << 28) ||
	    napi_get_value_uint32(env, argv[3], &port) != napi_ok || port > 0xffff) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "svpTablesUnderlay: bad node or port");
		return NULL;
	}
	napi_typeof(env, argv[2], &vt);
	if (vt != napi_null && (napi_is_buffer(env, argv[2], &is_buf) != napi_ok || !is_buf ||
				napi_get_buffer_info(env, argv[2], &ip, &iplen) != napi_ok || iplen != 16)) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "svpTablesUnderlay: ip must be a 16-byte Buffer or null");
		return NULL;
	}
	if (node >= t->nnodes) {
		uint32_t n = t->nnodes ? t->nnodes : 64;
		struct svp_underlay *grown;
		while (n <= node)
			n *= 2;
		grown = realloc(t->nodes, (size_t)n * sizeof(*grown));
		if (!grown) {
			napi_throw_error(env, "ENOMEM", "svpTablesUnderlay: out of memory");
			return NULL;
		}
		memset(grown + t->nnodes, 0, (size_t)(n - t->nnodes) * sizeof(*grown));
		t->nodes = grown;
		t->nnodes = n;
	}
	t->nodes[node].valid = ip != NULL;
	t->nodes[node].port = (uint16_t)port;
	if (ip)
		memcpy(t->nodes[node].ip, ip, 16);
	return NULL;
}

static napi_value js_index_create(napi_env env, napi_callback_info info)
{
	struct svp_index *ix = calloc(1, sizeof(*ix));
	napi_value out;

	if (!ix) {
		napi_throw_error(env, "ENOMEM", "svpIndexCreate: out of memory");
		return NULL;
	}
	if (napi_create_external(env, ix, index_finalize, NULL, &out) != napi_ok) {
		free(ix);
		rhumb_throw_pending_or(env, "svpIndexCreate: napi_create_external failed");
		return NULL;
	}
	return out;
}

/* Which state answers from now on; the index keeps it alive until the next one. */
static napi_value js_index_use(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	struct svp_index *ix;
	struct svp_tables *t;
	napi_ref ref;

	RHUMB_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2) {
		napi_throw_type_error(env, NULL, "svpIndexUse: 2 arguments");
		return NULL;
	}
	if (!svp_get_index(env, argv[0], &ix) || !svp_get_tables(env, argv[1], &t))
		return NULL;
	RHUMB_CHECK(env, napi_create_reference(env, argv[1], 1, &ref));
	if (ix->cur_ref)
		napi_delete_reference(env, ix->cur_ref);
	ix->cur_ref = ref;
	ix->cur = t;
	return NULL;
}

napi_status rhumb_svp_index_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "svpTablesCreate", NULL, js_tables_create, NULL, NULL, NULL, napi_default, NULL },
		{ "svpTablesStorage", NULL, js_tables_storage, NULL, NULL, NULL, napi_default, NULL },
		{ "svpTablesUnderlay", NULL, js_tables_underlay, NULL, NULL, NULL, napi_default, NULL },
		{ "svpIndexCreate", NULL, js_index_create, NULL, NULL, NULL, napi_default, NULL },
		{ "svpIndexUse", NULL, js_index_use, NULL, NULL, NULL, napi_default, NULL },
	};
	return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
