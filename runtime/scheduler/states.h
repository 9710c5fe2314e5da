/* The task states of the graph engine (graph.h describes each). */
#ifndef TERNI_SCHED_STATES_H
#define TERNI_SCHED_STATES_H

enum { T_WAITING, T_NO_WORKER, T_PROCESSING, T_MEMORY, T_ERRED, T_RELEASED, T_NSTATES };

extern const char *const graph_state_names[T_NSTATES];

#endif
