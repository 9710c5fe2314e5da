#!/bin/sh
# Doxygen INPUT_FILTER for the public headers (see TernDocs.cmake): a /* */ comment that
# starts a line documents the declaration after it (/**), one after a member or enumerator
# documents that member (/**<); "/* ----" section rules stay plain comments.
exec sed -e '/^[[:space:]]*\/\* ----/b' \
         -e 's|^\([[:space:]]*\)/\* |\1/** |' \
         -e 's|\([;,]\)[[:space:]]*/\* |\1 /**< |' "$1"
