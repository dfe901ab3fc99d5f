/* pillionctl check's verdicts on API objects: pure functions of the JSON, unit-tested. */
#ifndef PILLIONCTL_CHECK_EVAL_H
#define PILLIONCTL_CHECK_EVAL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* A control-plane Deployment serves only when its Available condition is True AND at least one
 * replica is ready: Available stays True at spec.replicas 0. Writes a one-line reason to msg
 * ("Available, 2/2 replicas ready" or why not) and returns true when it serves. */
bool check_deployment_serves(const json_t *deploy, char *msg, size_t size);

/* Counts the ready and not-ready addresses of a v1 Endpoints object. */
void check_endpoints_count(const json_t *endpoints, int *ready, int *not_ready);

/* pillionctl status: one proxy's state from its GET /status answer (NULL: it did not answer) and
 * what the operator wrote for it (the content hashes of its ConfigMap and of its namespace's
 * pillion-mesh; "" when unknown). */
enum proxy_sync { PROXY_SYNCED, PROXY_STALE, PROXY_NOT_READY };
extern const char *const proxy_sync_names[3];
/* The verdict, and a one-line detail in msg: what differs, or why it is not ready. */
/* want_outbound: outbound.json's hash, checked when the proxy says it takes its client-side
 * policies from there ("outbound": {"source": "mesh"}). */
enum proxy_sync check_proxy_sync(const json_t *status, const char *want_config, const char *want_mesh,
				 const char *want_outbound, char *msg, size_t size);

#endif
