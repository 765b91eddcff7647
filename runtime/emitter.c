/* emitter: see emitter.h (being written). */
#include "emitter.h"
