/* TLS configuration for dialers and listeners (see tls.h). */
#include "sdk/src/transport/tls.h"

#include "sdk/src/transport/wire.h"

#include <errno.h>
#include <nng/supplemental/tls/tls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_tls(const char *url)
{
    return url && !strncmp(url, "tls+tcp://", 10);
}

static const char *pick(const char *v, const char *env)
{
    if (v && *v)
        return v;
    v = getenv(env);
    return v && *v ? v : NULL;
}

/* Reads a whole (small) PEM file into a NUL-terminated string. */
static char *slurp(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (buf)
        n = fread(buf, 1, cap, f);
    bool big = buf && n == cap && fgetc(f) != EOF;
    fclose(f);
    if (!buf || big) {
        snprintf(err, errlen, "%s is not a PEM file of at most 64 KiB", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* Loads our certificate (+ key from key_file, or from cert_file when key_file is NULL). */
static int own_cert(nng_tls_config *cfg, const char *cert_file, const char *key_file, char *err,
                    size_t errlen)
{
    int rv;
    if (!key_file) {
        rv = nng_tls_config_cert_key_file(cfg, cert_file, NULL);
        if (rv != 0)
            snprintf(err, errlen,
                     "cannot use certificate file %s (certificate and key in one PEM, or give "
                     "the key with --tls-key): %s",
                     cert_file, nng_strerror(rv));
        return rv;
    }
    char *cert = slurp(cert_file, err, errlen), *key = cert ? slurp(key_file, err, errlen) : NULL;
    if (!cert || !key) {
        free(cert);
        free(key);
        return NNG_EINVAL;
    }
    rv = nng_tls_config_own_cert(cfg, cert, key, NULL);
    if (rv != 0)
        snprintf(err, errlen, "cannot use certificate %s with key %s: %s", cert_file, key_file,
                 nng_strerror(rv));
    free(cert);
    free(key);
    return rv;
}

int terni_tls_dialer(nng_dialer d, const char *url, const terni_sec *sec, char *err, size_t errlen)
{
    if (!is_tls(url))
        return TERN_OK;
    const char *ca_file = pick(sec ? sec->tls_ca : NULL, "TERN_TLS_CA");
    const char *cert = pick(sec ? sec->tls_cert : NULL, "TERN_TLS_CERT");
    const char *key = pick(sec ? sec->tls_key : NULL, "TERN_TLS_KEY");
    if (!ca_file) {
        snprintf(err, errlen,
                 "%s needs the CA certificate that signed the server's certificate: set "
                 "TERN_TLS_CA=<file.pem> (or --tls-ca, or the tls_ca_file option)",
                 url);
        return TERN_EINVAL;
    }
    /* host of tls+tcp://host:port, for certificate name checking */
    char host[256];
    const char *h = url + 10, *end = strrchr(h, ':');
    size_t n = end && end > h ? (size_t)(end - h) : strlen(h);
    if (n >= sizeof(host))
        n = sizeof(host) - 1;
    memcpy(host, h, n);
    host[n] = '\0';
    nng_tls_config *cfg = NULL;
    int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT);
    if (rv == 0 && (rv = nng_tls_config_ca_file(cfg, ca_file)) != 0) {
        snprintf(err, errlen, "cannot use CA file %s: %s", ca_file, nng_strerror(rv));
    } else if (rv == 0 && cert && (rv = own_cert(cfg, cert, key, err, errlen)) != 0) {
        /* err set */
    } else {
        if (rv == 0)
            rv = nng_tls_config_server_name(cfg, host);
        if (rv == 0)
            rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
        if (rv == 0)
            rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
        if (rv != 0)
            snprintf(err, errlen, "cannot configure TLS for %s: %s", url, nng_strerror(rv));
    }
    if (cfg)
        nng_tls_config_free(cfg);
    return rv == 0 ? TERN_OK : TERN_EIO;
}

int terni_tls_listener(nng_listener l, const char *url, const terni_sec *sec, char *err,
                       size_t errlen)
{
    if (!is_tls(url))
        return TERN_OK;
    const char *cert_file = pick(sec ? sec->tls_cert : NULL, "TERN_TLS_CERT");
    const char *key_file = pick(sec ? sec->tls_key : NULL, "TERN_TLS_KEY");
    const char *ca_file = sec && sec->tls_verify_clients ? pick(sec->tls_ca, "TERN_TLS_CA") : NULL;
    if (sec && sec->tls_verify_clients && !ca_file) {
        snprintf(err, errlen, "verifying client certificates needs --tls-ca (or TERN_TLS_CA)");
        return TERN_EINVAL;
    }
    if (!cert_file) {
        snprintf(err, errlen,
                 "%s needs a certificate: pass --tls-cert <cert.pem> [--tls-key <key.pem>] or "
                 "set TERN_TLS_CERT",
                 url);
        return TERN_EINVAL;
    }
    nng_tls_config *cfg = NULL;
    int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER);
    if (rv == 0 && (rv = own_cert(cfg, cert_file, key_file, err, errlen)) != 0) {
        /* err set */
    } else if (rv == 0 && ca_file && (rv = nng_tls_config_ca_file(cfg, ca_file)) != 0) {
        snprintf(err, errlen, "cannot use CA file %s: %s", ca_file, nng_strerror(rv));
    } else {
        if (rv == 0 && ca_file)
            rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
        if (rv == 0)
            rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg);
        if (rv != 0)
            snprintf(err, errlen, "cannot configure TLS for %s: %s", url, nng_strerror(rv));
    }
    if (cfg)
        nng_tls_config_free(cfg);
    return rv == 0 ? TERN_OK : TERN_EIO;
}
