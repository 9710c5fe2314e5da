/* libFuzzer target for the CBOR decoder.
 *
 * Every input is decoded with tern_decode, with tern_decode_borrow (from a 64-byte aligned
 * copy, so aligned typed-array payloads really are borrowed) and with terni_decode_slab (as
 * the daemons decode their messages); all must give the same result, and the borrowing ones
 * must call their release callback exactly once. A value that decodes
 * must then survive the round trip: tern_encoded_size matches the encoding, the encoding
 * decodes to an equal value, and encoding that again gives identical bytes
 * (encode(decode(encode(x))) == encode(x)). Any violation traps. */
#include <tern/codec.h>
#include <tern/error.h>
#include <tern/value.h>

#include "sdk/src/value_internal.h" /* terni_decode_slab */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static void count_release(void *arg)
{
    ++*(int *)arg;
}

static void check_roundtrip(const tern_value *v)
{
    size_t size = tern_encoded_size(v);
    uint8_t *enc = NULL;
    size_t len = 0;
    /* whatever the decoder accepts is within the encoder's limits */
    CHECK(tern_encode(v, &enc, &len) == TERN_OK);
    CHECK(size == len && len > 0);

    /* encode_into agrees, and refuses a buffer one byte short */
    uint8_t *into = malloc(len);
    size_t written = 0;
    CHECK(into != NULL);
    CHECK(tern_encode_into(v, into, len - 1, &written) == TERN_ETOOBIG);
    CHECK(tern_encode_into(v, into, len, &written) == TERN_OK);
    CHECK(written == len && memcmp(into, enc, len) == 0);
    free(into);

    tern_value *back = NULL;
    char err[128];
    CHECK(tern_decode(enc, len, NULL, &back, err, sizeof(err)) == TERN_OK);
    CHECK(tern_value_equal(v, back));
    CHECK(tern_value_equal(back, v));

    uint8_t *again = NULL;
    size_t again_len = 0;
    CHECK(tern_encode(back, &again, &again_len) == TERN_OK);
    CHECK(again_len == len && memcmp(again, enc, len) == 0);

    char *s = tern_value_to_string(v, 0);
    CHECK(s != NULL);
    free(s);

    free(again);
    tern_value_unref(back);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    tern_value *v = (tern_value *)&err; /* must be overwritten */
    int rc = tern_decode(data, size, NULL, &v, err, sizeof(err));
    if (rc == TERN_OK) {
        CHECK(v != NULL);
        check_roundtrip(v);
    } else {
        CHECK(v == NULL);
        CHECK(rc > 0 && rc < TERN_ERR_COUNT);
        CHECK(strncmp(err, "byte ", 5) == 0); /* the message names the offset */
    }

    uint8_t *copy = aligned_alloc(64, (size + 64) / 64 * 64);
    CHECK(copy != NULL);
    if (size)
        memcpy(copy, data, size);
    int released = 0;
    tern_value *w = (tern_value *)&err;
    int rc2 = tern_decode_borrow(copy, size, NULL, count_release, &released, &w, NULL, 0);
    CHECK(rc2 == rc);
    if (rc2 == TERN_OK) {
        CHECK(w != NULL);
        CHECK(released <= 1);
        CHECK(tern_value_equal(v, w));
        check_roundtrip(w);
        tern_value_unref(w);
    } else {
        CHECK(w == NULL);
    }
    CHECK(released == 1);

    /* into a slab; a part kept after the rest is dropped must stay intact */
    released = 0;
    tern_value *x = (tern_value *)&err;
    int rc3 = terni_decode_slab(copy, size, NULL, count_release, &released, &x, NULL, 0);
    CHECK(rc3 == rc);
    if (rc3 == TERN_OK) {
        CHECK(tern_value_equal(v, x));
        const tern_value *part = x;
        while (tern_list_get(part, tern_list_len(part) / 2, &part) == TERN_OK)
            ;
        tern_value *kept = tern_value_ref((tern_value *)part);
        tern_value_unref(x);
        check_roundtrip(kept);
        tern_value_unref(kept);
    } else {
        CHECK(x == NULL);
    }
    CHECK(released == 1);
    free(copy);
    tern_value_unref(v);
    return 0;
}
