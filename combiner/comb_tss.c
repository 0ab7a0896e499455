/*
 * comb_tss.c: threshold-mode keys (Shoup's threshold RSA, split/split_tss.h).
 * No process holds such a key: every source answers one signature with its
 * signature share, comb_tss_accept takes or refuses each share as it
 * arrives (for a record with verification keys, only with Shoup's proof of
 * its correctness), and comb_tss_run multiplies k of them into the
 * signature, which split_tss_combine checks with e before it leaves. The
 * proofs are checked only when that check fails: a signature that passes it
 * is right whatever the shares were, and checking a proof costs more CPU
 * than making a signature share. Then the proofs name the wrong shares,
 * with no subsets tried. A batch of a threshold key carries exactly one
 * operation (a SIGSHARE_REQUEST names one digest).
 * The combiner's own key share, if it holds one, signs in process as a
 * holder would, after the holders' requests are out.
 */

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "combiner/comb_private.h"

/* comb_tss_open_local turns the combiner's own share file into key->signer. */
static int comb_tss_open_local(struct comb_ctx *c, struct comb_key *key,
                               const struct proto_share_file *local,
                               const struct proto_holder_secret *holder_key)
{
    const struct proto_record *rec = &key->rec;
    struct split_opened_share os;
    uint8_t *s = NULL;
    int r = SPK_ERR_INVALID_ARG;

    if (holder_key == NULL) {
        comb_set_error(c, "key %s: a local share needs the combiner's holder key", key->short_id);
        goto out;
    }
    if (local->mode != PROTO_MODE_THRESHOLD ||
        sodium_memcmp(local->key_id, rec->key_id, PROTO_KEY_ID_LEN) != 0 ||
        sodium_memcmp(local->split_id, rec->split_id, PROTO_SPLIT_ID_LEN) != 0 ||
        local->threshold != rec->threshold || local->num_shares != rec->num_shares) {
        r = SPK_ERR_MIXED_SPLIT;
        comb_set_error(c, "key %s: the local share belongs to another key, split or mode",
                       key->short_id);
        goto out;
    }
    if ((s = spk_secret_new(rec->modulus_len)) == NULL) {
        r = SPK_ERR_NOMEM;
        comb_set_error(c, "key %s: no locked memory for the local share", key->short_id);
        goto out;
    }
    if ((r = split_share_open(s, rec->modulus_len, local, holder_key)) != 0) {
        comb_set_error(c, "key %s: cannot open the local share with holder key '%s': %s",
                       key->short_id, holder_key->pub.name, spk_strerror(r));
        goto out;
    }
    sodium_memzero(&os, sizeof(os));
    memcpy(os.key_id, local->key_id, PROTO_KEY_ID_LEN);
    memcpy(os.split_id, local->split_id, PROTO_SPLIT_ID_LEN);
    os.index = local->index;
    os.holder = local->holder;
    os.y = s;
    if ((r = split_share_check(rec, NULL, &os)) != 0) {
        comb_set_error(c, "key %s: the local share (index %u) fails the record's check: %s",
                       key->short_id, (unsigned)local->index, spk_strerror(r));
        goto out;
    }
    if ((r = split_tss_signer_new(&key->signer, rec->modulus, rec->modulus_len, rec->num_shares, s,
                                  rec->modulus_len)) != 0) {
        comb_set_error(c, "key %s: cannot prepare the local signer: %s", key->short_id,
                       spk_strerror(r));
        goto out;
    }
    /* With verification keys the local share must be the one v_i names. */
    if (rec->has_vkeys &&
        (r = split_tss_signer_set_vkeys(key->signer, rec->vkey_base,
                                        proto_record_vkey(rec, local->index))) != 0) {
        comb_set_error(c,
                       "key %s: the local share (index %u) is not the one the record's "
                       "verification key names: %s",
                       key->short_id, (unsigned)local->index, spk_strerror(r));
        goto out;
    }
    key->local_index = local->index;
    r = 0;
out:
    /* The signer keeps 2 Delta s_i; the share itself is not kept twice. */
    spk_secret_free(s);
    return r;
}

int comb_tss_key_init(struct comb_ctx *c, struct comb_key *key,
                      const struct proto_share_file *local,
                      const struct proto_holder_secret *holder_key)
{
    const struct proto_record *rec = &key->rec;

    if (rec->threshold < 2 || rec->threshold > rec->num_shares ||
        rec->num_shares > PROTO_SHARES_MAX || rec->modulus_len > COMB_SLOT_LEN) {
        comb_set_error(c, "key %s: the record's threshold is not one we take", key->short_id);
        return SPK_ERR_MALFORMED;
    }
    key->answer_len = rec->modulus_len;
    key->mod_bits = proto_record_modulus_bits(rec);
    return local != NULL ? comb_tss_open_local(c, key, local, holder_key) : 0;
}

/* comb_tss_below_n: the big-endian |x| (n_len bytes) is below the modulus. Public values. */
static bool comb_tss_below_n(const struct proto_record *rec, const uint8_t *x)
{
    for (size_t i = 0; i < rec->modulus_len; i++) {
        if (x[i] != rec->modulus[i]) {
            return x[i] < rec->modulus[i];
        }
    }
    return false;
}

int comb_tss_accept(const struct comb_ctx *c, const struct comb_batch *b,
                    const struct comb_fetch_ent *ent, const char **why)
{
    const struct comb_key *key = b->key;
    const struct comb_src *src = &c->srcs[ent->src];
    const struct proto_record_share *rs = proto_record_find_share(&key->rec, ent->info.index);
    bool local = c->have_local_src && ent->src == c->local_src;

    if (sodium_memcmp(ent->info.key_id, key->rec.key_id, PROTO_KEY_ID_LEN) != 0) {
        *why = "a signature share of another key";
        return SPK_ERR_MIXED_SPLIT;
    }
    if (rs == NULL ||
        (local ? ent->info.index != key->local_index : strcmp(rs->holder, src->name) != 0)) {
        *why = "an index the record does not give to this holder";
        return SPK_ERR_WRONG_HOLDER;
    }
    if (!comb_tss_below_n(&key->rec, ent->f.out_y)) {
        *why = "a signature share not below the modulus";
        return SPK_ERR_MALFORMED;
    }
    /* Verification keys: a received share counts only with its proof, which
     * comb_tss_run checks should the combination fail. The local share was
     * checked against v_i when it was opened. */
    if (key->rec.has_vkeys && !local && !ent->info.has_proof) {
        *why = "a signature share without its proof (the record has verification keys)";
        return SPK_ERR_FAULT;
    }
    for (size_t i = 0; i < b->num_good; i++) {
        if (b->fetches[b->good[i]].info.index == ent->info.index) {
            *why = "a second signature share of the same index";
            return SPK_ERR_DUP_INDEX;
        }
    }
    *why = "";
    return 0;
}

void comb_tss_refuse(struct comb_ctx *c, struct comb_batch *b, const struct comb_fetch_ent *ent,
                     int status, const char *why)
{
    struct comb_src *src = &c->srcs[ent->src];

    src->st.bad++;
    src->st.bad_sigshares++;
    comb_src_note_bad(c, ent->src);
    src->st.last_error = status;
    c->counters.shares_bad++;
    comb_batch_note(b, src->name, "signature share %u dropped: %s", (unsigned)ent->info.index, why);
    spk_log("combiner", "key %s: %s sent a bad signature share (index %u): %s", b->key->short_id,
            src->name, (unsigned)ent->info.index, why);
}

/*
 * comb_tss_drop_disproven: the good shares of |b| did not combine over the
 * encoded message |em|. Each proof not checked yet is checked now, and each
 * share whose proof fails is refused and dropped from b->good (the others
 * keep their arrival order). Returns how many were dropped.
 */
static size_t comb_tss_drop_disproven(struct comb_ctx *c, struct comb_batch *b, const uint8_t *em)
{
    size_t kept = 0, dropped = 0;

    for (size_t i = 0; i < b->num_good; i++) {
        struct comb_fetch_ent *ent = &b->fetches[b->good[i]];
        bool local = c->have_local_src && ent->src == c->local_src;
        int r;

        if (!local && !ent->proven) {
            r = split_tss_share_verify(&b->key->rec, em, ent->info.index, ent->f.out_y,
                                       ent->info.proof_c, ent->info.proof_z);
            if (r != 0) {
                comb_tss_refuse(c, b, ent, r,
                                r == SPK_ERR_FAULT
                                    ? "a signature share whose proof of correctness fails"
                                    : "a signature share whose proof cannot be checked");
                ent->accepted = false;
                comb_slot_put(c, ent->f.out_y, ent->f.out_len);
                ent->f.out_y = NULL;
                dropped++;
                continue;
            }
            ent->proven = true;
        }
        b->good[kept++] = b->good[i];
    }
    b->num_good = kept;
    return dropped;
}

/* comb_tss_can_wait: another source may still answer |b|: one is running or not asked yet. */
static bool comb_tss_can_wait(const struct comb_ctx *c, const struct comb_batch *b)
{
    size_t asked = 0;

    if (b->num_running > 0 || b->num_examined < b->num_done) {
        return true;
    }
    for (size_t i = 0; i < c->num_srcs && i < b->cap_fetches; i++) {
        const struct comb_src *src = &c->srcs[i];

        if (src->ops->has_key == NULL || src->ops->has_key(src->ctx, b->key->rec.key_id)) {
            asked++;
        }
    }
    return asked > b->num_fetches;
}

/*
 * comb_tss_regather sends |b| back to gathering until it holds |need| good
 * shares, asking at once every source not asked yet. False when no source
 * may still answer (|b| is to fail).
 */
static bool comb_tss_regather(struct comb_ctx *c, struct comb_batch *b, size_t need)
{
    if (!comb_tss_can_wait(c, b)) {
        return false;
    }
    b->need_good = need;
    b->state = COMB_BATCH_GATHERING;
    comb_batch_hedge(c, b, spk_now_ns());
    return b->num_running > 0 || b->num_examined < b->num_done;
}

/* comb_tss_blame counts and logs each source whose signature share |bad| marks. */
static void comb_tss_blame(struct comb_ctx *c, struct comb_batch *b, const uint8_t *bad)
{
    for (size_t i = 0; i < b->num_good; i++) {
        const struct comb_fetch_ent *ent = &b->fetches[b->good[i]];
        struct comb_src *src = &c->srcs[ent->src];

        if (!bad[i]) {
            continue;
        }
        src->st.bad++;
        src->st.bad_sigshares++;
        comb_src_note_bad(c, ent->src);
        src->st.last_error = SPK_ERR_FAULT;
        c->counters.shares_bad++;
        spk_log("combiner",
                "key %s: %s sent a wrong signature share (index %u); signed with the others",
                b->key->short_id, src->name, (unsigned)ent->info.index);
    }
}

void comb_tss_fail(struct comb_ctx *c, struct comb_batch *b, int status, const char *why)
{
    char detail[COMB_DETAIL_MAX];
    size_t used;

    used = (size_t)snprintf(detail, sizeof(detail), "key %s: ", b->key->short_id);
    if (status == SPK_ERR_FAULT) {
        snprintf(detail + used, sizeof(detail) - used,
                 "the %zu signature shares received do not combine into a valid signature (a "
                 "holder sent a wrong one) and no other holder answered%s%s%s",
                 b->num_good, why != NULL ? " (" : "", why != NULL ? why : "",
                 why != NULL ? ")" : "");
    } else {
        snprintf(detail + used, sizeof(detail) - used, "cannot combine the signature shares: %s",
                 spk_strerror(status));
    }
    used = strlen(detail);
    if (b->failures[0] != '\0' && used + 11 < sizeof(detail)) {
        memcpy(detail + used, "; failed: ", 11);
        used += 10;
        snprintf(detail + used, sizeof(detail) - used, "%.*s", (int)(sizeof(detail) - used - 1),
                 b->failures);
    }
    comb_batch_fail(c, b, status, detail);
}

void comb_tss_run(struct comb_ctx *c, struct comb_batch *b)
{
    struct split_tss_part parts[PROTO_SHARES_MAX];
    uint8_t bad[PROTO_SHARES_MAX];
    uint8_t em[PROTO_BN_MAX];
    struct comb_key *key = b->key;
    const struct proto_record *rec = &key->rec;
    struct comb_op *op = b->ops_head;
    uint64_t t0 = spk_now_ns();
    size_t i;
    int r;

    memset(bad, 0, sizeof(bad));
    if (op == NULL || op->next != NULL) {
        comb_batch_fail(c, b, SPK_ERR_INTERNAL, "a threshold batch carries one operation");
        return;
    }
    for (i = 0; i < b->num_good; i++) {
        const struct comb_fetch_ent *ent = &b->fetches[b->good[i]];

        parts[i].index = ent->info.index;
        parts[i].xi = ent->f.out_y;
    }
    op->out = c->results;
    if ((r = split_pad_encode(em, rec->modulus_len, key->mod_bits, (uint8_t)op->alg, op->in,
                              op->in_len, op->salt, op->salt_len)) != 0) {
        op->out = NULL;
        comb_tss_fail(c, b, r, NULL);
        return;
    }
    /* With verification keys the proofs, not the subsets, tell a wrong share. */
    r = split_tss_combine(op->out, rec->has_vkeys ? NULL : bad, rec->modulus, rec->modulus_len,
                          rec->exponent, rec->exponent_len, rec->num_shares, rec->threshold, em,
                          parts, b->num_good);
    comb_series_add(&c->s_op, spk_now_ns() - t0);
    if (r != 0 && rec->has_vkeys) {
        /* Only now are the proofs worth their cost: the shares whose proofs
         * fail are dropped and k good ones gathered again. With every proof
         * holding, the wrong share is one no proof covers (the local one):
         * no other answer would help. */
        if (comb_tss_drop_disproven(c, b, em) > 0) {
            if (comb_tss_regather(c, b, rec->threshold)) {
                return;
            }
            op->out = NULL;
            comb_batch_fail_threshold(c, b, NULL);
            return;
        }
    } else {
        comb_tss_blame(c, b, bad);
        /* One of the shares is wrong and no k of them tell which: wait for one more. */
        if (r == SPK_ERR_FAULT && comb_tss_regather(c, b, b->num_good + 1)) {
            return;
        }
    }
    if (r != 0) {
        op->out = NULL;
        comb_tss_fail(c, b, r, rec->has_vkeys ? "every proof received holds" : NULL);
        return;
    }
    op->status = 0;
    op->out_len = rec->modulus_len;
    c->counters.batches++;
    comb_batch_unlink(c, b);
    comb_batch_deliver(c, b, NULL);
}

/* ---- the local key share ------------------------------------------------------- */

void comb_tss_local_queue(struct comb_ctx *c, struct comb_fetch *fetch)
{
    struct comb_fetch **pp = &c->local_queue;

    while (*pp != NULL) {
        pp = (struct comb_fetch **)&(*pp)->source_data;
    }
    fetch->source_data = NULL;
    *pp = fetch;
}

void comb_tss_local_cancel(struct comb_ctx *c, struct comb_fetch *fetch)
{
    for (struct comb_fetch **pp = &c->local_queue; *pp != NULL;
         pp = (struct comb_fetch **)&(*pp)->source_data) {
        if (*pp == fetch) {
            *pp = fetch->source_data;
            return;
        }
    }
}

/* comb_tss_local_sign answers |fetch| with the local signature share. */
static void comb_tss_local_sign(struct comb_ctx *c, struct comb_fetch *fetch)
{
    struct comb_key *key = comb_key_find(c, fetch->key_id);
    struct comb_share_info info;
    uint8_t em[PROTO_BN_MAX];
    int r;

    if (key == NULL || key->signer == NULL || fetch->out_len != key->rec.modulus_len) {
        comb_fetch_done(fetch, SPK_ERR_UNKNOWN_KEY, NULL, "no local share of this key");
        return;
    }
    /* Encoded here from (op, digest, salt) as every holder does for itself. */
    r = split_pad_encode(em, key->rec.modulus_len, key->mod_bits, fetch->op, fetch->digest,
                         fetch->digest_len, fetch->salt, fetch->salt_len);
    if (r == 0) {
        r = split_tss_sign_share(key->signer, fetch->out_y, em);
    }
    spk_stack_wipe(COMB_STACK_WIPE);
    if (r != 0) {
        comb_fetch_done(fetch, r, NULL, NULL);
        return;
    }
    memset(&info, 0, sizeof(info));
    memcpy(info.key_id, key->rec.key_id, PROTO_KEY_ID_LEN);
    memcpy(info.split_id, key->rec.split_id, PROTO_SPLIT_ID_LEN);
    info.index = key->local_index;
    comb_fetch_done(fetch, 0, &info, NULL);
}

void comb_tss_local_process(struct comb_ctx *c)
{
    struct comb_fetch *fetch;

    while ((fetch = c->local_queue) != NULL) {
        c->local_queue = fetch->source_data;
        fetch->source_data = NULL;
        comb_tss_local_sign(c, fetch);
    }
}
