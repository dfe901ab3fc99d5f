/* Model-internal decoders shared by policy.c and objects.c. */
#ifndef PILLION_MODEL_OBJECTS_H
#define PILLION_MODEL_OBJECTS_H

#include "model/decode.h"

/* Enum spellings, index = enum value / bit position. */
extern const char *const pl_method_names[];
extern const char *const pl_retry_on_names[];
extern const char *const pl_mtls_names[];
extern const char *const pl_log_filter_names[];
extern const char *const pl_trace_mode_names[];

void dec_meta(pl_dec *d, const json_t *doc, bool strict, pl_meta *m);
void dec_labels(pl_dec *d, const json_t *obj, const char *key, bool validate, pl_labels *out);
void dec_mesh_identity(pl_dec *d, const json_t *doc, pl_mesh_identity *mi);
void dec_traffic_policy(pl_dec *d, const json_t *doc, pl_traffic_policy *tp);

#endif
