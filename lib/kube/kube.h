/* Kubernetes API client (the only libcurl user): configuration, requests, list, watch, server-side apply, events. */
#ifndef PILLION_KUBE_KUBE_H
#define PILLION_KUBE_KUBE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "kube/kube-t.h"

#define PL_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define PL_KUBE_DEFAULT_QPS 20.0
#define PL_KUBE_DEFAULT_BURST 30
#define PL_KUBE_USER_AGENT "pillion/0.1"   /* when the config names none */
#define PL_KUBE_RV_MAX 64   /* a resourceVersion buffer this size is plenty (etcd revisions are integers) */

/*
 * Return values of every call below: 0, or -errno chosen from the HTTP status:
 *   400, 422 -EINVAL      401 -EACCES      403 -EPERM       404 -ENOENT
 *   409 AlreadyExists -EEXIST; 409 otherwise (Conflict: stale resourceVersion, failed precondition) -ESTALE
 *   410 -ERANGE (Gone / Expired: relist)   429 after the retries -EBUSY
 *   5xx after the retries -EIO             other HTTP errors -EPROTO
 *   a body that is not the JSON promised -EBADMSG; transport: -ECONNREFUSED, -ETIMEDOUT,
 *   -EHOSTUNREACH, -ECONNRESET, -EIO; -ENOMEM; -EFBIG past the response size limit.
 * and st (may be NULL everywhere) says why, with the API's Status when it sent one.
 */

/* ---------- configuration (config.c) ---------- */

/*
 * Fills cfg the way kubectl and client-go pick a cluster:
 *   kubeconfig != NULL: that file;
 *   else $KUBECONFIG (a colon-separated list: the first entry that exists; no merging);
 *   else in-cluster when KUBERNETES_SERVICE_HOST is set;
 *   else ~/.kube/config.
 * context NULL means the kubeconfig's current-context. On failure cfg is left empty
 * and err names the file and the field ("kubeconfig /x: users[name=\"u\"].user.client-key: missing").
 * Returns 0, -ENOENT (no configuration found), -EINVAL (a bad field) or another -errno.
 */
int pl_kube_config_load(pl_kube_config *cfg, const char *kubeconfig, const char *context, char *err,
			size_t errlen);
/* One kubeconfig file; relative paths in it are resolved against its directory. */
int pl_kube_config_load_file(pl_kube_config *cfg, const char *path, const char *context, char *err,
			     size_t errlen);
/*
 * In-cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT with sa_dir's
 * token (as token_file, so rotation is seen), ca.crt and namespace. sa_dir NULL means
 * PL_KUBE_SA_DIR; tests pass a temporary directory.
 */
int pl_kube_config_in_cluster(pl_kube_config *cfg, const char *sa_dir, char *err, size_t errlen);
void pl_kube_config_free(pl_kube_config *cfg);
/* Deep copy; 0 or -ENOMEM. dst is overwritten (not freed first). */
int pl_kube_config_copy(pl_kube_config *dst, const pl_kube_config *src);

/* ---------- the client (client.c: transport; verbs.c: the calls) ---------- */

/*
 * A client for cfg (deep-copied: the caller keeps and frees cfg). qps/burst set the
 * client-side token bucket, as client-go does (qps <= 0: 20 qps, burst <= 0: 30).
 * One pl_kube per thread: it holds one libcurl easy handle, which keeps the connection
 * (HTTP/2 over TLS when libcurl offers it). NULL when cfg has no server or on
 * allocation failure. Free with pl_kube_free (NULL is fine).
 */
pl_kube *pl_kube_new(const pl_kube_config *cfg, double qps, int burst);
void pl_kube_free(pl_kube *k);
/* The namespace the configuration names (never NULL). */
const char *pl_kube_namespace(const pl_kube *k);

/*
 * Retries: one request makes at most max_attempts HTTP attempts (default 5). 429 is
 * retried for every verb (the server did not act on it) after Retry-After; 5xx and
 * transport errors only for GET (lists and watches before their stream starts), and a
 * refused connection for every verb; waits back off from 200 ms, doubling. No single
 * wait exceeds max_wait_ms (default 30000): tests set it low.
 */
void pl_kube_set_retry(pl_kube *k, int max_attempts, int64_t max_wait_ms);
/* Seconds: connect (default 10), whole non-watch request (60), watch silence before the stream counts as cut (120). */
void pl_kube_set_timeouts(pl_kube *k, long connect_s, long request_s, long watch_idle_s);
void pl_kube_set_clock(pl_kube *k, const pl_kube_clock *clock);
void pl_kube_set_observer(pl_kube *k, pl_kube_observer fn, void *ctx);

/*
 * One API call. path_and_query starts with '/'. body (len bytes, may be NULL) is sent
 * with content_type. On 2xx, *out (when out is non-NULL) receives the parsed response
 * (a new reference owned by the caller; NULL for an empty body); on failure *out is NULL.
 */
int pl_kube_request(pl_kube *k, const char *method, const char *path_and_query, const char *content_type,
		    const char *body, size_t len, json_t **out, pl_kube_status *st);
int pl_kube_get(pl_kube *k, const char *path, json_t **out, pl_kube_status *st);

/*
 * LIST with pagination: page_limit items per page (<= 0: 500), following
 * metadata.continue. *items receives every item (a JSON array owned by the caller; items
 * carry no kind or apiVersion, as the API sends them) and
 * rv the list's resourceVersion (the one to start a watch from). query is extra
 * parameters ("labelSelector=a%3Db") or NULL. A 410 on a continue token (the snapshot
 * expired) restarts the list from the beginning once; a second returns -ERANGE.
 */
int pl_kube_list(pl_kube *k, const char *path, const char *query, int page_limit, json_t **items, char *rv,
		 size_t rvlen, pl_kube_status *st);

/*
 * WATCH from rv (empty: from now) with allowWatchBookmarks and timeoutSeconds, calling
 * cb for each event as its line completes. rv is updated from every event the callback
 * accepted (and every BOOKMARK), so the caller resumes where it stopped. Returns:
 *   0 when the stream ended: the server's timeout, or a cut (connection reset, no bytes
 *     for watch_idle_s, a partial last line, which is discarded); st->message says which;
 *     resume from rv;
 *   -ERANGE when the server says 410 Gone (HTTP status or an ERROR event): relist;
 *   cb's value when cb returned nonzero;
 *   another -errno (an ERROR event's Status, a malformed line -EBADMSG, no connection).
 */
int pl_kube_watch(pl_kube *k, const char *path, const char *query, char *rv, size_t rvlen, int timeout_s,
		  pl_kube_watch_cb cb, void *ctx, pl_kube_status *st);

/*
 * Server-side apply: PATCH application/apply-patch+yaml (obj as canonical JSON, which
 * is YAML: identical objects give identical bytes) ?fieldManager=...&force=true. Also
 * for the status subresource (a path ending in /status). field_manager NULL means
 * "pillion-operator". *out as pl_kube_request.
 */
int pl_kube_apply(pl_kube *k, const char *path, const json_t *obj, const char *field_manager, bool force,
		  json_t **out, pl_kube_status *st);
/* JSON merge patch (application/merge-patch+json). */
int pl_kube_merge_patch(pl_kube *k, const char *path, const json_t *patch, json_t **out, pl_kube_status *st);
/* POST obj to a collection path. */
int pl_kube_create(pl_kube *k, const char *collection, const json_t *obj, json_t **out, pl_kube_status *st);
/* DELETE, with a uid precondition when uid is non-NULL (a 409 then means a different object has the name). */
int pl_kube_delete(pl_kube *k, const char *path, const char *precondition_uid, pl_kube_status *st);

/*
 * Posts a core/v1 Event about obj (which carries apiVersion, kind and metadata) in
 * obj's namespace ("default" for cluster-scoped objects): type "Normal" or "Warning",
 * a CamelCase reason, a message (truncated to 1024 bytes), component as source.component.
 */
int pl_kube_event(pl_kube *k, const json_t *obj, const char *type, const char *reason, const char *message,
		  const char *component, pl_kube_status *st);

/*
 * Builds /api/v1/[namespaces/<ns>/]<plural>[/<name>[/<sub>]] (group NULL or "") or
 * /apis/<group>/<version>/... into buf. ns, name and sub may be NULL. Segments must be
 * non-empty and hold no '/', '?', '#' or '%'. 0, -EINVAL or -ENAMETOOLONG.
 */
int pl_kube_path(char *buf, size_t len, const char *group, const char *version, const char *ns,
		 const char *plural, const char *name, const char *sub);
/* The errno for an HTTP status and Status reason (the table above). */
int pl_kube_errno(long http, const char *reason);

#endif
