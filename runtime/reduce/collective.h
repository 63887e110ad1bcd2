/* collective.h — the public collective (cldp_collective_* in cldp.h): host-staged, deterministic
 * reduction of an application's own per-device buffers, on the tree of tree.h. */
#ifndef CLDP_COLLECTIVE_H
#define CLDP_COLLECTIVE_H

#include "common.h"
#include "tree.h"

#endif
