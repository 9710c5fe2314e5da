/* Task Bench graph patterns (see graph.h; the definitions are in bench/README.md).
 *
 * Design notes
 * - A graph is W columns by S steps; only the tree has steps narrower than W. Dependencies
 *   always point one step back, so a driver needs two rows of W values (or futures) at a
 *   time and the reference computation is O(W) memory.
 * - The tree repeats a period of 2D steps, D = max(1, ceil(log2 W)): step s has level
 *   l = s mod 2D folded back (l > D becomes 2D - l), and width min(W, 2^l). Going wider,
 *   task i depends on task i/2 (its parent); going narrower, on tasks 2i and 2i+1 (its
 *   children, those that exist); at equal width, on task i. With W = 2 the widths are
 *   1, 2, 1, 2, ...
 * - nearest with radix k depends on the k points starting (k-1)/2 to the left, clipped to
 *   [0, W): for odd k a window of radius (k-1)/2, so nearest with k = 3 is the stencil.
 */
#include "graph.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[TB_NPATTERNS] = {
    [TB_STENCIL] = "stencil", [TB_NOCOMM] = "nocomm",         [TB_TREE] = "tree",
    [TB_NEAREST] = "nearest", [TB_ALL_TO_ALL] = "all_to_all",
};

const char *tb_pattern_name(tb_pattern p)
{
    return (unsigned)p < TB_NPATTERNS ? names[p] : "?";
}

int tb_pattern_parse(const char *name, tb_pattern *out)
{
    for (int p = 0; p < TB_NPATTERNS; p++)
        if (!strcmp(name, names[p])) {
            *out = (tb_pattern)p;
            return 0;
        }
    return -1;
}

/* D = max(1, ceil(log2 W)) */
static int tree_depth(int width)
{
    int d = 1;
    while ((1L << d) < width)
        d++;
    return d;
}

int tb_width_at(const tb_graph *g, long s)
{
    if (g->pattern != TB_TREE)
        return g->width;
    int d = tree_depth(g->width);
    long l = s % (2L * d);
    if (l > d)
        l = 2L * d - l;
    long w = 1L << l;
    return w < g->width ? (int)w : g->width;
}

static int add_range(int lo, int hi, int width, int *out)
{
    int n = 0;
    if (lo < 0)
        lo = 0;
    if (hi > width - 1)
        hi = width - 1;
    for (int j = lo; j <= hi; j++)
        out[n++] = j;
    return n;
}

int tb_deps(const tb_graph *g, long s, int i, int *out)
{
    if (s <= 0)
        return 0;
    int w = g->width;
    switch (g->pattern) {
    case TB_STENCIL:
        return add_range(i - 1, i + 1, w, out);
    case TB_NOCOMM:
        out[0] = i;
        return 1;
    case TB_NEAREST: {
        int k = g->radix < 1 ? 1 : g->radix;
        int lo = i - (k - 1) / 2;
        return add_range(lo, lo + k - 1, w, out);
    }
    case TB_ALL_TO_ALL:
        return add_range(0, w - 1, w, out);
    case TB_TREE: {
        int wp = tb_width_at(g, s - 1), wc = tb_width_at(g, s);
        if (wc > wp) {
            out[0] = i / 2;
            return 1;
        }
        if (wc < wp)
            return add_range(2 * i, 2 * i + 1, wp, out);
        out[0] = i;
        return 1;
    }
    default:
        return 0;
    }
}

long tb_tasks(const tb_graph *g, long steps)
{
    if (g->pattern != TB_TREE)
        return steps * g->width;
    long n = 0;
    for (long s = 0; s < steps; s++)
        n += tb_width_at(g, s);
    return n;
}

long tb_slots(const tb_graph *g, long steps, int workers)
{
    if (workers < 1)
        workers = 1;
    long n = 0;
    for (long s = 0; s < steps; s++)
        n += (tb_width_at(g, s) + workers - 1) / workers;
    return n;
}

int tb_graph_reference(const tb_graph *g, long steps, uint64_t k, uint64_t *last)
{
    size_t w = (size_t)g->width;
    uint64_t *prev = calloc(w, sizeof(uint64_t)), *cur = calloc(w, sizeof(uint64_t));
    uint64_t *in = calloc(w, sizeof(uint64_t));
    int *deps = calloc(w, sizeof(int));
    int width = 0;
    if (!prev || !cur || !in || !deps) {
        width = -1;
        goto out;
    }
    for (long s = 0; s < steps; s++) {
        width = tb_width_at(g, s);
        for (int i = 0; i < width; i++) {
            int n = tb_deps(g, s, i, deps);
            for (int j = 0; j < n; j++)
                in[j] = prev[deps[j]];
            cur[i] = tb_mix(s, i, in, (size_t)n, k);
        }
        uint64_t *t = prev;
        prev = cur;
        cur = t;
    }
    if (width > 0)
        memcpy(last, prev, (size_t)width * sizeof(uint64_t));
out:
    free(prev);
    free(cur);
    free(in);
    free(deps);
    return width;
}

int tb_graph_reference_flat(int pattern, int width, int radix, long steps, uint64_t k,
                            uint64_t *last)
{
    if (pattern < 0 || pattern >= TB_NPATTERNS || width < 1 || steps < 1)
        return -1;
    tb_graph g = { .pattern = (tb_pattern)pattern, .width = width, .radix = radix };
    return tb_graph_reference(&g, steps, k, last);
}
