/* The one table of error codes: tern_strerror() and docs come from here. */
#include <tern/error.h>

#include <stddef.h>

static const struct {
    const char *name;
    const char *text;
} error_table[TERN_ERR_COUNT] = {
    [TERN_OK] = { "TERN_OK", "success" },
    [TERN_EINVAL] = { "TERN_EINVAL", "invalid argument" },
    [TERN_ENOMEM] = { "TERN_ENOMEM", "out of memory" },
    [TERN_ETYPE] = { "TERN_ETYPE", "value has the wrong type" },
    [TERN_ERANGE] = { "TERN_ERANGE", "index or number out of range" },
    [TERN_ENOTFOUND] = { "TERN_ENOTFOUND", "not found" },
    [TERN_EMALFORMED] = { "TERN_EMALFORMED", "malformed input" },
    [TERN_ETRUNCATED] = { "TERN_ETRUNCATED", "input is truncated" },
    [TERN_ETOODEEP] = { "TERN_ETOODEEP", "nesting is too deep" },
    [TERN_ETOOBIG] = { "TERN_ETOOBIG", "input or value is too large" },
    [TERN_EUNSUPPORTED] = { "TERN_EUNSUPPORTED", "valid CBOR that tern does not support" },
    [TERN_ESHARED] = { "TERN_ESHARED", "value is shared and cannot be modified" },
    [TERN_ESHAPE] = { "TERN_ESHAPE", "array shapes do not match" },
    [TERN_EIO] = { "TERN_EIO", "input/output error" },
    [TERN_ENOTPLUGIN] = { "TERN_ENOTPLUGIN", "not a tern plugin" },
    [TERN_EABI] = { "TERN_EABI", "plugin ABI version mismatch" },
    [TERN_EDLOPEN] = { "TERN_EDLOPEN", "the dynamic loader refused the plugin" },
    [TERN_ENOTTASK] = { "TERN_ENOTTASK", "symbol is not a declared task" },
    [TERN_ETASK] = { "TERN_ETASK", "task failed" },
    [TERN_ETIMEDOUT] = { "TERN_ETIMEDOUT", "timed out" },
    [TERN_ECLOSED] = { "TERN_ECLOSED", "closed" },
    [TERN_ECONNREFUSED] = { "TERN_ECONNREFUSED", "connection refused" },
    [TERN_EPROTO] = { "TERN_EPROTO", "protocol error" },
    [TERN_ECANCELED] = { "TERN_ECANCELED", "cancelled" },
    [TERN_ELOST] = { "TERN_ELOST", "data lost" },
    [TERN_EAUTH] = { "TERN_EAUTH", "authentication failed" },
    [TERN_EBUSY] = { "TERN_EBUSY", "resource busy" },
    [TERN_ENOWORKERS] = { "TERN_ENOWORKERS", "no worker can run the task" },
    [TERN_EKILLED] = { "TERN_EKILLED", "the task killed the workers that ran it" },
};

const char *tern_strerror(int code)
{
    if (code < 0 || code >= TERN_ERR_COUNT || error_table[code].text == NULL)
        return "unknown tern error code";
    return error_table[code].text;
}

const char *tern_strerror_name(int code)
{
    if (code < 0 || code >= TERN_ERR_COUNT || error_table[code].name == NULL)
        return "TERN_E?";
    return error_table[code].name;
}
