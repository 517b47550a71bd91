// The bounds of one decode (guard.h).

#include "guard.h"

void guard_cancel(guard *g) {
	__atomic_store_n(&g->cancel, 1, __ATOMIC_RELAXED);
}

int guard_cancelled(guard *g) {
	if (!g || !__atomic_load_n(&g->cancel, __ATOMIC_RELAXED))
		return 0;
	g->verdict = VERDICT_CANCELLED;
	return 1;
}
