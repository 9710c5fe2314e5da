/* The tern plugin of tern-taskbench: one task, taskbench:task(step, index, iterations,
 * dep...), that runs the shared kernel (kernel.c, the same object as in libtb_kernel.so)
 * and returns tb_mix(step, index, deps, tb_kernel(iterations)) as an int (the uint64 bits).
 * Dependencies arrive as the ints their tasks returned, in the order they were passed.
 */
#include <stdlib.h>

#include <tern/plugin.h>

#include "kernel.h"

TERN_PLUGIN("taskbench", "1.0.0");

#define STACK_DEPS 64

TERN_TASK(task)
{
    size_t nargs = tern_nargs(ctx);
    int64_t step, index, iterations;
    if (nargs < 3 || tern_arg_int(ctx, 0, &step) || tern_arg_int(ctx, 1, &index) ||
        tern_arg_int(ctx, 2, &iterations) || iterations < 0)
        return tern_fail(ctx, TERN_EINVAL, "task(step, index, iterations >= 0, dep...): ints");
    size_t n = nargs - 3;
    uint64_t stack[STACK_DEPS];
    uint64_t *in = n <= STACK_DEPS ? stack : malloc(n * sizeof(uint64_t));
    if (!in)
        return tern_fail(ctx, TERN_ENOMEM, "task: out of memory");
    for (size_t j = 0; j < n; j++) {
        int64_t v;
        if (tern_arg_int(ctx, 3 + j, &v)) {
            if (in != stack)
                free(in);
            return tern_fail(ctx, TERN_ETYPE, "task: dependency %zu is not an int", j);
        }
        in[j] = (uint64_t)v;
    }
    uint64_t k = tb_kernel((uint64_t)iterations);
    uint64_t out = tb_mix(step, index, in, n, k);
    if (in != stack)
        free(in);
    return tern_int((int64_t)out);
}
