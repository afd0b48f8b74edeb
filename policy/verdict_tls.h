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
};

#endif
