/*
 * verdict_tls.h - the private TLS part of a verdict, shared by the engine
 * (policy.c, which fills it) and verdict.c (which checks sessions against
 * it).  Nothing outside policy/ includes this header.
 */
#ifndef MXG_VERDICT_TLS_H
#define MXG_VERDICT_TLS_H

#include <stdint.h>
#include <openssl/x509.h>

#include "policy/override.h"

struct dane_info;

struct policy_tls {
	struct dane_info *dane;		/* TLS_LEVEL_DANE: the TLSA RRset */
	X509_STORE	*store;		/* WebPKI store (a reference) */
	uint64_t	 store_gen;	/* which store: a new one per
					 * engine configuration */
	int		 nnames;	/* reference identifiers */
	char		 names[OVR_MAX_MATCH][256];
	int		 nfp;		/* fingerprint: the leaf's SHA-256 */
	unsigned char	 fp[OVR_MAX_MATCH][32]; /* (cert or SPKI) */
	int		 min_proto;	/* protocols=: OpenSSL versions, */
	int		 max_proto;	/* 0 = not limited */
};

/*
 * What an RFC 8460 report says of the policy a verdict applied: its type
 * (enum tlsrpt_policy_type: sts or tlsa), the policy strings (sts: the
 * policy file's lines; tlsa: the TLSA records in presentation form) and
 * the MX host patterns.  One flat allocation, so that a verdict copy is a
 * memcpy: buf holds nstrings then nmx NUL-terminated strings, len bytes.
 */
struct policy_rpt {
	int		 type;
	int		 nstrings;
	int		 nmx;
	size_t		 len;
	char		 buf[];
};

#endif
