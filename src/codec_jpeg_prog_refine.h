/* The AC refinement block decoder of codec_jpeg_prog.c, written once and
 * compiled twice: included there once for any CPU and once with BMI2's
 * pdep, with these defined (not a header to include anywhere else):
 *   REFINE_NAME              the function's name
 *   REFINE_TARGET            its target attribute (or nothing)
 *   REFINE_POPCOUNT(m)       set bits of m
 *   REFINE_DEPOSIT(w, m)     the low bits of w onto the set bits of m, lowest first
 *   REFINE_SELECT_TOP(m, r)  a mask whose highest set bit is the (r+1)-th
 *                            highest of m; 0 when m has at most r bits
 *
 * nblocks blocks of a refinement scan, in a row (one at a time where
 * restart markers may come between them). In each block the symbols place
 * new coefficients of +-p1 at zero positions, and every coefficient that
 * was nonzero before this scan and that the decoder passes gets a
 * correction bit (libjpeg's decode_mcu_AC_refine). The masks are in
 * zigzag order with position k at bit 63 - k (ZZ_BIT), so that the
 * correction bits, read first bit first, land by one deposit (pdep) on the
 * positions they belong to: the first bit read is the most significant of
 * the word and goes to the highest set bit of the mask, which is the lowest
 * position. The corrections are collected over the block and applied at
 * its end: they touch only coefficients that were nonzero before the scan,
 * the new ones only positions that were zero, so the order does not
 * matter. */

#define REFINE_CAT2(a, b) a##b
#define REFINE_CAT(a, b) REFINE_CAT2(a, b)
#define REFINE_TAKE REFINE_CAT(REFINE_NAME, _take)

/* The correction bits of the coefficients in mask m, deposited on their
 * positions (0 when m is empty). When the buffer holds them, without a
 * branch on whether there are any: a deposit onto no bits is 0. */
REFINE_TARGET
static inline uint64_t REFINE_TAKE(struct bits *b, uint64_t m)
{
    int n = REFINE_POPCOUNT(m);
    uint64_t w;

    if (n < b->n) {
        w = b->buf >> ((64 - n) & 63);
        b->buf <<= n;
        b->n -= n;
    } else {
        if (n == 0)
            return 0;   /* and the buffer is empty: nothing to read */
        w = get_bits_long(b, n);
    }
    return REFINE_DEPOSIT(w, m);
}

REFINE_TARGET
static int REFINE_NAME(struct scan *sc, JBLOCKROW blocks, uint64_t *nzs, uint32_t nblocks)
{
    struct bits br = sc->br, *b = &br;
    const struct huff *h = sc->huff[0];
    int Ss = sc->Ss, Se = sc->Se, p1 = 1 << sc->Al;
    uint64_t band = ~0ull << (63 - Se);
    unsigned eobrun = sc->eobrun;
    uint32_t i;

    for (i = 0; i < nblocks; i++) {
        JCOEF *blk = blocks[i];
        uint64_t nz = nzs[i], corr = 0;
        int k = Ss;

        if (eobrun == 0) {
            for (; k <= Se; k++) {
                int r, t = next_symbol(b, h, &r), v = 0, p;
                uint64_t zeros, skipped;

                if (t < 0)
                    return DECLINE;
                if (t) {
                    if (t != 1)
                        return DECLINE;   /* libjpeg: JWRN_HUFF_BAD_CODE */
                    v = get_bits(b, 1) ? p1 : -p1;
                } else if (r != 15) {
                    eobrun = 1u << r;
                    if (r)
                        eobrun += get_bits(b, r);
                    break;
                }
                /* Skip r zero coefficients (correcting the nonzero ones on
                 * the way) and stop at the next zero: the new coefficient,
                 * or the 16th zero of a ZRL. */
                zeros = ~nz & (~0ull >> k) & band;
                zeros = REFINE_SELECT_TOP(zeros, r);
                if (!zeros)
                    return DECLINE;   /* past the band: libjpeg writes position 63 or drops it */
                p = __builtin_clzll(zeros);
                skipped = nz & (~0ull >> k) & ~(~0ull >> p);
                corr |= REFINE_TAKE(b, skipped);
                if (v) {
                    blk[zz_natural[p]] = (JCOEF)v;
                    nz |= ZZ_BIT(p);
                }
                k = p;
            }
        }
        if (eobrun > 0) {
            if (k <= Se) {
                uint64_t rest = nz & (~0ull >> k) & band;

                if (rest)   /* often empty: testing first measured ~1% faster */
                    corr |= REFINE_TAKE(b, rest);
            }
            eobrun--;
        }
        /* A 1 adds p1 to the magnitude unless that bit is already set;
         * branch-free, as the bits are random. */
        while (corr) {
            JCOEF *c = &blk[zz_by_bit[__builtin_ctzll(corr)]];
            int cv = *c, neg = cv >> 15;   /* -1 when negative */
            int add = p1 - (cv & p1);      /* p1, or 0 when the bit is set */

            *c = (JCOEF)(cv + ((add ^ neg) - neg));
            corr &= corr - 1;
        }
        nzs[i] = nz;
    }
    sc->br = br;
    sc->eobrun = eobrun;
    return 0;
}

#undef REFINE_TAKE
#undef REFINE_CAT
#undef REFINE_CAT2
