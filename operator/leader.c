/* Leader election with a coordination.k8s.io/v1 Lease: acquire, renew, and end the process when the lease is lost. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "json/json.h"
#include "operator.h"

/* MicroTime as the API writes it: 2026-11-22T10:00:00.123456Z */
static void micro_now(char out[40], double *now)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 40 - n, ".%06ldZ", (long)tv.tv_usec);
	*now = (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static double parse_time(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!rest)
		return 0;
	double frac = 0;
	if (*rest == '.')
		frac = strtod(rest, NULL);
	return (double)timegm(&tm) + frac;
}

/* One attempt: 1 when we hold the lease now, 0 when someone else does, -errno on API errors. */
static int try_acquire(op *o, pl_kube *k, bool *was_ours)
{
	char path[600], coll[600], now[40];
	double tnow;
	pl_kube_status st;
	json_t *lease = NULL;

	pl_kube_path(path, sizeof(path), "coordination.k8s.io", "v1", o->set.namespace, "leases", o->set.lease_name, NULL);
	micro_now(now, &tnow);
	int rc = pl_kube_get(k, path, &lease, &st);
	if (rc == -ENOENT) {
		json_t *obj = json_pack("{sssss{ssss}s{sssIsssssI}}", "apiVersion", "coordination.k8s.io/v1", "kind", "Lease",
					"metadata", "name", o->set.lease_name, "namespace", o->set.namespace, "spec",
					"holderIdentity", o->set.identity, "leaseDurationSeconds",
					(json_int_t)o->set.lease_duration_s, "acquireTime", now, "renewTime", now,
					"leaseTransitions", (json_int_t)0);
		pl_kube_path(coll, sizeof(coll), "coordination.k8s.io", "v1", o->set.namespace, "leases", NULL, NULL);
		rc = pl_kube_create(k, coll, obj, NULL, &st);
		json_decref(obj);
		if (rc == -EEXIST)
			return 0;
		*was_ours = false;
		return rc < 0 ? rc : 1;
	}
	if (rc < 0)
		return rc;
	json_t *spec = json_object_get(lease, "spec");
	const char *holder = pl_json_get_str(spec, "holderIdentity");
	double renew = parse_time(pl_json_get_str(spec, "renewTime"));
	json_int_t dur = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
	bool mine = holder && strcmp(holder, o->set.identity) == 0;
	if (!mine && holder && *holder && renew + (double)dur > tnow) {
		json_decref(lease);
		return 0;
	}
	/* Ours to renew, or expired: take it with an update guarded by resourceVersion. */
	if (!mine) {
		json_object_set_new(spec, "holderIdentity", json_string(o->set.identity));
		json_object_set_new(spec, "acquireTime", json_string(now));
		json_object_set_new(spec, "leaseTransitions",
				    json_integer(json_integer_value(json_object_get(spec, "leaseTransitions")) + 1));
	}
	json_object_set_new(spec, "renewTime", json_string(now));
	json_object_set_new(spec, "leaseDurationSeconds", json_integer(o->set.lease_duration_s));
	char *body = pl_json_dump_canonical(lease);
	rc = pl_kube_request(k, "PUT", path, "application/json", body, strlen(body), NULL, &st);
	free(body);
	json_decref(lease);
	*was_ours = mine;
	if (rc == -ESTALE)
		return mine ? -ESTALE : 0; /* updated under us: for a renewal, look again before giving up */
	return rc < 0 ? rc : 1;
}

static void *renew_loop(void *arg)
{
	op *o = arg;
	pl_kube *k = pl_kube_new(&o->kcfg, 5, 10);
	time_t last_ok = time(NULL);

	while (!o->stop) {
		sleep((unsigned)o->set.retry_period_s);
		if (o->stop)
			break;
		bool mine = false;
		int rc = try_acquire(o, k, &mine);
		for (int again = 0; rc == -ESTALE && again < 3 && !o->stop; again++)
			rc = try_acquire(o, k, &mine);
		if (rc == 1) {
			last_ok = time(NULL);
			continue;
		}
		if (rc < 0)
			log_warnx("leader election: renewing the lease: %s", strerror(-rc));
		if (rc == 0 || time(NULL) - last_ok > o->set.renew_deadline_s) {
			/* Another replica may already write: stop at once, the Deployment restarts us as a follower. */
			log_errorx("leader election: lost the lease %s/%s (%s); exiting", o->set.namespace, o->set.lease_name,
				   rc == 0 ? "another replica holds it" : "could not renew it in time");
			_exit(1);
		}
	}
	pl_kube_free(k);
	return NULL;
}

int op_leader_acquire(op *o)
{
	pl_kube *k = pl_kube_new(&o->kcfg, 5, 10);
	bool logged = false;

	while (!o->stop) {
		bool mine = false;
		int rc = try_acquire(o, k, &mine);
		if (rc == 1) {
			log_info("leader election: %s holds the lease %s/%s", o->set.identity, o->set.namespace,
				 o->set.lease_name);
			o->leader = true;
			pthread_t t;
			pthread_create(&t, NULL, renew_loop, o);
			pthread_detach(t);
			pl_kube_free(k);
			return 0;
		}
		if (rc < 0)
			log_warnx("leader election: %s", strerror(-rc));
		else if (!logged)
			log_info("leader election: another replica leads; waiting with a warm cache");
		logged = true;
		sleep((unsigned)o->set.retry_period_s);
	}
	pl_kube_free(k);
	return -ECANCELED;
}

/* On a clean stop, hand the lease back (holder cleared, 1 s duration) so a standby takes over at
 * once instead of after leaseDurationSeconds, as client-go's ReleaseOnCancel does. */
void op_leader_release(op *o)
{
	char path[600], now[40];
	double tnow;
	pl_kube_status st;
	json_t *lease = NULL;
	pl_kube *k;

	if (!o->leader || !(k = pl_kube_new(&o->kcfg, 5, 10)))
		return;
	pl_kube_set_retry(k, 1, 2000);
	pl_kube_path(path, sizeof(path), "coordination.k8s.io", "v1", o->set.namespace, "leases", o->set.lease_name, NULL);
	micro_now(now, &tnow);
	if (pl_kube_get(k, path, &lease, &st) == 0) {
		json_t *spec = json_object_get(lease, "spec");
		const char *holder = pl_json_get_str(spec, "holderIdentity");
		if (holder && strcmp(holder, o->set.identity) == 0) {
			json_object_set_new(spec, "holderIdentity", json_string(""));
			json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
			json_object_set_new(spec, "renewTime", json_string(now));
			char *body = pl_json_dump_canonical(lease);
			if (pl_kube_request(k, "PUT", path, "application/json", body, strlen(body), NULL, &st) == 0)
				log_info("leader election: released the lease %s/%s", o->set.namespace, o->set.lease_name);
			else
				log_warnx("leader election: releasing the lease: HTTP %ld %s", st.http, st.message);
			free(body);
		}
	}
	json_decref(lease);
	o->leader = false;
	pl_kube_free(k);
}
