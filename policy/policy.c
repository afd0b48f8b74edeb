/*
 * policy.c - the policy engine (see policy.h).
 *
 * This first version knows only the opportunistic default and the global
 * require_tls setting; DANE, MTA-STS, overrides and the TLS history come
 * in their own modules.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "core/log.h"
#include "policy/policy.h"

struct policy {
	struct ev_loop	*loop;
	int		 require_tls;
};

struct policy_req {
	struct policy		*pol;
	struct ev_timer		*timer;
	struct policy_verdict	*v;
	policy_cb		*cb;
	void			*arg;
};

static const char *level_names[] = {
	"none", "may", "encrypt", "dane", "verify", "defer",
};

const char *
tls_level_name(enum tls_level l)
{
	return (unsigned)l < 6 ? level_names[l] : "?";
}

struct policy *
policy_new(struct ev_loop *loop, const struct config *cfg, char *err,
    size_t errsz)
{
	struct policy *p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	p->loop = loop;
	if (policy_reconfigure(p, cfg, err, errsz) == -1) {
		free(p);
		return NULL;
	}
	return p;
}

void
policy_free(struct policy *p)
{
	free(p);
}

int
policy_reconfigure(struct policy *p, const struct config *cfg, char *err,
    size_t errsz)
{
	p->require_tls = strcmp(cfg->require_tls, "yes") == 0;
	return 0;
}

static void
normalise_domain(const char *in, char *out, size_t outsz)
{
	size_t i, n = strlen(in);

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n >= outsz)
		n = outsz - 1;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[n] = '\0';
}

static void
req_fire(void *arg)
{
	struct policy_req *r = arg;
	struct policy_verdict *v = r->v;

	r->v = NULL;
	ev_timer_free(r->timer);
	r->cb(r->arg, v);
	free(r);
}

struct policy_req *
policy_lookup(struct policy *p, const char *domain,
    const struct sockaddr *dst, socklen_t dstlen, policy_cb *cb, void *arg)
{
	struct policy_req *r;
	struct policy_verdict *v;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((v = calloc(1, sizeof(*v))) == NULL)
		goto fail;
	if ((r->timer = ev_timer_new(p->loop, req_fire, r)) == NULL)
		goto fail;
	r->pol = p;
	r->cb = cb;
	r->arg = arg;
	r->v = v;
	normalise_domain(domain, v->domain, sizeof(v->domain));
	if (p->require_tls) {
		v->level = TLS_LEVEL_ENCRYPT;
		v->source = "require_tls";
	} else {
		v->level = TLS_LEVEL_MAY;
		v->source = "default";
	}
	ev_timer_arm(r->timer, 0);
	return r;
fail:
	free(v);
	free(r);
	return NULL;
}

void
policy_cancel(struct policy_req *r)
{
	if (r == NULL)
		return;
	ev_timer_free(r->timer);
	policy_verdict_free(r->v);
	free(r);
}

void
policy_verdict_free(struct policy_verdict *v)
{
	free(v);
}

int
policy_tls_prepare(const struct policy_verdict *v, SSL *ssl)
{
	if (v->mx_host[0] != '\0') {
		if (!SSL_set_tlsext_host_name(ssl, v->mx_host))
			return -1;
		if (!SSL_set1_host(ssl, v->mx_host))
			return -1;
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	}
	return 0;
}

int
policy_tls_check(const struct policy_verdict *v, SSL *ssl, char *reason,
    size_t reasonsz, char *detail, size_t detailsz)
{
	long vr = SSL_get_verify_result(ssl);
	X509 *peer = SSL_get0_peer_certificate(ssl);

	if (peer == NULL) {
		snprintf(reason, reasonsz, "certificate-not-trusted");
		snprintf(detail, detailsz, "no server certificate");
		return -1;
	}
	if (vr == X509_V_OK) {
		snprintf(reason, reasonsz, "success");
		snprintf(detail, detailsz, "verified");
		return 0;
	}
	switch (vr) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		snprintf(reason, reasonsz, "certificate-expired");
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
		snprintf(reason, reasonsz, "certificate-host-mismatch");
		break;
	default:
		snprintf(reason, reasonsz, "certificate-not-trusted");
		break;
	}
	snprintf(detail, detailsz, "%s", X509_verify_cert_error_string(vr));
	/* opportunistic and unauthenticated-but-encrypted levels accept it */
	return v->level == TLS_LEVEL_MAY || v->level == TLS_LEVEL_ENCRYPT ||
	    v->level == TLS_LEVEL_NONE ? 0 : -1;
}

const char *
policy_no_starttls_reason(const struct policy_verdict *v)
{
	return v->level == TLS_LEVEL_DANE ? "dane-required" :
	    "starttls-not-supported";
}

void
policy_record_tls(struct policy *p, const struct sockaddr *dst,
    const char *mx_host, int starttls_offered, int tls_ok)
{
}
