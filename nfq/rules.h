/*
 * rules.h - the netfilter rule sets that steer port-25 flows to mxguard
 * (docs/rules.md has the rules themselves and why each one is there).
 *
 * Everything mxguard installs lives in its own chains (MXGUARD_STEER in
 * mangle, MXGUARD_DIVERT in nat, MXGUARD_GUARD in filter) entered from
 * one jump rule per built-in chain, or, for rules_backend=nftables, in its
 * own table "inet mxguard".  Install and remove are one iptables-restore
 * (nft -f) transaction per table, idempotent, and remove leaves
 * iptables-save / ip6tables-save output as it was before install: a table
 * that only existed because of mxguard is deleted again (the jump rule's
 * comment "mxguard created-table" remembers that, so no state file).
 *
 * The generators are pure (config + current iptables-save text in, script
 * out) so they are unit-tested, as is the comparison of what is in place
 * with the configuration's set (rules_ipt_state, rules_nft_state);
 * rules_install/remove/show/state run the tools.
 */
#ifndef MXG_RULES_H
#define MXG_RULES_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

#define RULES_COMMENT		"mxguard"
#define RULES_COMMENT_NEW	"mxguard created-table"
/* the routing protocol of the TPROXY ip rules and routes (iproute2's
 * "proto"): unassigned in rt_protos, and how remove finds them */
#define RULES_RT_PROTO		77

/* Growing text buffer used by the generators. */
struct rbuf {
	char	*s;
	size_t	 len, cap;
	int	 oom;
};
void	 rbuf_printf(struct rbuf *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 rbuf_free(struct rbuf *);

/*
 * iptables-restore --noflush script for one family (4 or 6) that takes the
 * ruleset from `saved` (that family's iptables-save output, "" if none) to
 * the one the config wants: removes every jump to an MXGUARD_* chain and
 * every MXGUARD_* chain the config no longer wants, (re)creates the wanted
 * chains and inserts the jumps at the top of the built-in chains.
 * want == 0 generates the removal script instead, want == RULES_REFUSE
 * the refusal set (every outbound and forwarded port-25 packet refused,
 * lo aside; nothing taken from the config).  Tables that need no change
 * get no section.  Returns 0, or -1 with err (bad config value).
 */
#define RULES_REFUSE	2
int	 rules_ipt_script(const struct config *, int family, int want,
	    const char *saved, struct rbuf *out, char *err, size_t errsz);
/*
 * Tables of `saved` that mxguard created and that hold nothing else (no
 * rule, no other chain, every policy ACCEPT) once the removal script has
 * run on them: `after` is iptables-save output after removal, `before`
 * the output before it (for the created-table comments).  Writes their
 * names, space separated, to out.
 */
void	 rules_ipt_created_empty(const char *before, const char *after,
	    struct rbuf *out);
/* The nftables ruleset (nft -f input) that replaces table inet mxguard. */
int	 rules_nft_script(const struct config *, struct rbuf *out,
	    char *err, size_t errsz);

/* The ip rule / ip route commands for gateway+tproxy (argv vectors are
 * written one command a line, words separated by spaces). */
int	 rules_tproxy_needed(const struct config *);
/* What the configuration's rules would do that an administrator should
 * hear of and the configuration's load does not say (one line, no
 * newline), or NULL: for rules install and -n -v.  (A bypass entry's
 * host bits are a load warning: config_host_bits_warning().) */
const char *rules_warning(const struct config *);
int	 rules_route_table(const struct config *);

/* Run the tools.  Each returns 0 or -1 with err filled. */
int	 rules_install(const struct config *, char *err, size_t errsz);
int	 rules_remove(const struct config *, char *err, size_t errsz);
/* Replaces whatever mxguard rules are installed with the refusal set
 * (RULES_REFUSE; iptables, the nftables table deleted): for boot, when the
 * configured set could not be installed.  Nothing is taken from c: the
 * defaults will do when the configuration does not load. */
int	 rules_refuse_install(const struct config *, char *err, size_t errsz);
/*
 * What is in place of the configuration's set (one family's iptables-save
 * text, or `nft list table inet mxguard` output, NULL when there is no
 * such table): RULES_ST_COMPLETE when every chain, the number of rules in
 * each, the uids of their owner (skuid) matches, where they divert or
 * queue a flow and with which marks (nft: the targets and the queue), and
 * every jump from a built-in chain are there; RULES_ST_REFUSAL
 * when the refusal set's rule is (whole or not: it is no loss of the
 * configured set); RULES_ST_NONE when nothing of mxguard's is;
 * RULES_ST_PARTIAL otherwise, with what is missing appended to missing
 * (may be NULL), e.g. "IPv4 filter table: MXGUARD_GUARD holds 0 of its 6
 * rules, the jump from OUTPUT gone".  -1 with err on a bad config.
 */
enum { RULES_ST_NONE, RULES_ST_PARTIAL, RULES_ST_COMPLETE, RULES_ST_REFUSAL };
int	 rules_ipt_state(const struct config *, int family, const char *saved,
	    struct rbuf *missing, char *err, size_t errsz);
int	 rules_nft_state(const struct config *, const char *listed,
	    struct rbuf *missing, char *err, size_t errsz);
/* The same for what is installed now, both families and nftables (the
 * configured backend's set; the refusal set in either family makes
 * RULES_ST_REFUSAL).  *broken is set when one of mxguard's chains has no
 * rule or no jump into it, or is gone where every set of the shape in
 * place has it (rules_inplace()'s broken): damage whatever configuration
 * installed the set.  -1 with err when the tools fail. */
int	 rules_state(const struct config *, struct rbuf *missing, int *broken,
	    char *err, size_t errsz);
/*
 * What of mxguard's is in place, read by the fixed names alone (chains
 * MXGUARD_*, table inet mxguard), no configuration needed: for `rules
 * stop` and `rules watch` when the file does not load.  any: some chain,
 * jump or table of mxguard's; refuses: the set would refuse port-25 flows
 * with no daemon (the refusal set, or a guard with fail_mode = closed's
 * last rule), or cannot be told not to (mxguard's rules without a guard:
 * TPROXY with steering = none), 0 only for a fail-open guard or nothing;
 * broken: as rules_state()'s, or a chain taken whole that every set of
 * that shape has (a queueing set's nat chain, a guard).
 * rules_inplace_text() is the reading of given iptables-save texts
 * (NULL: none) and nft listing (NULL: no table).
 */
struct rules_inplace {
	int	any, refuses, broken;
};
void	 rules_inplace_text(const char *saved4, const char *saved6,
	    const char *listed, struct rules_inplace *);
int	 rules_inplace(struct rules_inplace *, char *err, size_t errsz);
/* Prints what is installed now; returns 1 if mxguard's rules are present,
 * 0 if not, -1 on error. */
int	 rules_show(const struct config *, FILE *out, char *err, size_t errsz);
/* Prints the scripts install would apply now (dry run). */
int	 rules_generate(const struct config *, FILE *out, char *err,
	    size_t errsz);

#endif
