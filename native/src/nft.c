/*
 * nftables in process (rhumb_nft.h). libnftables keeps some state process-wide (its
 * interface cache, one-time initialisation), so every use is serialised here; each use
 * gets its own context, created inside the target namespace so that its netlink socket
 * lives there.
 */
#include "rhumb_nft.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <nftables/libnftables.h>

#include "rhumb_netns.h"

static pthread_mutex_t nft_mu = PTHREAD_MUTEX_INITIALIZER;

struct nft_job {
	const char *text;
	bool listing;
	char **out;
	char *err;
	size_t errlen;
};

static void copy_err(struct nft_job *j, const char *msg)
{
	size_t n;
	if (!j->errlen)
		return;
	snprintf(j->err, j->errlen, "%s", msg && *msg ? msg : "nftables refused the ruleset");
	n = strlen(j->err);
	while (n && (j->err[n - 1] == '\n' || j->err[n - 1] == ' '))
		j->err[--n] = '\0';
}

/*
 * The context of the caller's own namespace lives as long as the process: closing an
 * nftables socket waits for the kernel to finish destroying what the last batch replaced
 * (an RCU grace period, tens of milliseconds under load), which the agent's port filter
 * updates on every attach and detach should not pay. Contexts of instance namespaces are
 * made and freed per use (a kept socket would keep a deleted namespace alive).
 */
static struct nft_ctx *own_ctx;

static struct nft_ctx *context(bool own)
{
	struct nft_ctx *ctx;
	if (own && own_ctx)
		return own_ctx;
	ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (ctx) {
		nft_ctx_buffer_output(ctx);
		nft_ctx_buffer_error(ctx);
	}
	if (own)
		own_ctx = ctx;
	return ctx;
}

static int nft_run_in(struct nft_job *j, bool own)
{
	struct nft_ctx *ctx = context(own);
	const char *errtext, *outtext;
	int rc;

	if (!ctx) {
		copy_err(j, "cannot create an nftables context");
		return -1;
	}
	rc = nft_run_cmd_from_buffer(ctx, j->text);
	/* Both buffers are read (which empties them) every time: a kept context starts clean. */
	errtext = nft_ctx_get_error_buffer(ctx);
	outtext = nft_ctx_get_output_buffer(ctx);
	if (rc != 0) {
		copy_err(j, errtext);
		rc = -1;
	} else if (j->listing) {
		*j->out = strdup(outtext);
		if (!*j->out) {
			copy_err(j, "out of memory");
			rc = -1;
		}
	}
	if (!own)
		nft_ctx_free(ctx);
	return rc;
}

static int nft_run_other(void *arg)
{
	return nft_run_in(arg, false);
}

static int run_locked(int nsfd, struct nft_job *j)
{
	int rc;
	if (j->errlen)
		j->err[0] = '\0';
	pthread_mutex_lock(&nft_mu);
	rc = nsfd >= 0 ? rhumb_netns_run(nsfd, nft_run_other, j) : nft_run_in(j, true);
	pthread_mutex_unlock(&nft_mu);
	return rc;
}

int rhumb_nft_apply(int nsfd, const char *text, char *err, size_t errlen)
{
	struct nft_job j = { .text = text, .err = err, .errlen = errlen };
	return run_locked(nsfd, &j);
}

int rhumb_nft_list(int nsfd, const char *cmd, char **out, char *err, size_t errlen)
{
	struct nft_job j = { .text = cmd, .listing = true, .out = out, .err = err, .errlen = errlen };
	*out = NULL;
	return run_locked(nsfd, &j);
}
