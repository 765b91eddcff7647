/* sysproj: see sysproj.h (being written). */
#include "sysproj.h"
