// The bounds of one decode, whichever path it takes.

#ifndef IMAGESVC_GUARD_H
#define IMAGESVC_GUARD_H

// guard is shared by the caller and a decode: the caller sets max_scans
// before the decode and cancel (from any thread, with guard_cancel) to stop
// it; a decode that stops on the guard's account, or on corrupt data, says
// why in verdict. A load that returns NULL with verdict VERDICT_NONE only
// declined the source: another path may take it. Any other verdict is
// final.
typedef struct {
	int max_scans; // a progressive JPEG with more scans is refused (0: no limit)
	int cancel;    // read and written atomically
	int verdict;
} guard;

enum { VERDICT_NONE = 0, VERDICT_CORRUPT, VERDICT_TOO_COMPLEX, VERDICT_CANCELLED };

// guard_cancel asks the decode under g to stop at its next check.
void guard_cancel(guard *g);

// guard_cancelled reports whether g asks to stop, and records it as the
// verdict when it does.
int guard_cancelled(guard *g);

#endif
