/* The two directions, composed: the only place that names both. */
#include "proxy.h"

const px_dir_ops *const px_dirs[2] = {[PX_OUT] = &px_outbound_ops, [PX_IN] = &px_inbound_ops};
