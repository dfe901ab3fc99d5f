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

#endif
