/* tern — symbol visibility and version macros for the public headers.
 *
 * libtern is built with -fvisibility=hidden; only declarations marked TERN_API are exported.
 */
#ifndef TERN_EXPORT_H
#define TERN_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define TERN_API             __attribute__((visibility("default")))
#define TERN_PRINTF(fmt, va) __attribute__((format(printf, fmt, va)))
#define TERN_NODISCARD       __attribute__((warn_unused_result))
#else
#define TERN_API
#define TERN_PRINTF(fmt, va)
#define TERN_NODISCARD
#endif

/* Library version (semantic versioning). The wire protocol and the plugin ABI have versions
 * of their own: TERN_ABI_VERSION in <tern/plugin.h>. */
#define TERN_VERSION_MAJOR  0
#define TERN_VERSION_MINOR  1
#define TERN_VERSION_PATCH  0
#define TERN_VERSION_STRING "0.1.0"

#endif
