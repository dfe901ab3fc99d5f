/* What each injected pod's config was last rendered as (hash, policies, identity) against which snapshot, so a
 * status reconcile counts Programmed pods without rendering every pod again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "json/json.h"
#include "operator.h"

struct op_rendered {
	char *key;       /* "ns/name": the map's key */
	char *hash;
	char *policies;  /* "\n" + each "ns/name" that shaped the config + "\n" */
	char *identity;  /* the MeshIdentity's "ns/name", or "" */
	uint64_t gen;    /* the snapshot it was rendered against */
};

static void entry_free(struct op_rendered *e)
{
	if (!e)
		return;
	free(e->key);
	free(e->hash);
	free(e->policies);
	free(e->identity);
	free(e);
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");
	if (!d)
		abort();
	return d;
}

/* Every string under a "policy" key, anywhere in the rendered config. */
static void collect_policies(const json_t *j, pl_buf *out)
{
	const char *k;
	json_t *v;
	size_t i;

	if (json_is_object(j)) {
		json_object_foreach((json_t *)j, k, v) {
			if (strcmp(k, "policy") == 0 && json_is_string(v))
				pl_buf_printf(out, "%s\n", json_string_value(v));
			else
				collect_policies(v, out);
		}
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v) collect_policies(v, out);
	}
}

void op_rendered_record(op *o, const char *ns, const char *name, const json_t *cfg, const char *identity,
			uint64_t gen)
{
	struct op_rendered *e = calloc(1, sizeof(*e));
	pl_buf pol = PL_BUF_INIT;
	char key[600];

	if (!e)
		abort();
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	pl_buf_puts(&pol, "\n");
	collect_policies(cfg, &pol);
	e->key = xstrdup(key);
	e->hash = xstrdup(pl_json_get_str(cfg, "hash"));
	e->policies = xstrdup(pol.data);
	e->identity = xstrdup(identity);
	e->gen = gen;
	pthread_mutex_lock(&o->mu);
	const char *old_key = NULL;
	struct op_rendered *old = pl_hmap_del(&o->rendered, key, &old_key);
	pl_hmap_put(&o->rendered, e->key, e);
	pthread_mutex_unlock(&o->mu);
	/* A pod new to a policy's reach (a new pod, a new client) makes its Programmed count again:
	 * a policy that said True must not go on saying it while this pod's proxy lacks it. Coalesced
	 * by the queue over a short delay. Only pol, identity and old (out of the map now) are read:
	 * once published, e may be replaced and freed by another worker at any time. */
	for (char *p = pol.data + 1; *p; ) {
		char *nl = strchr(p, '\n');
		if (!nl)
			break;
		char needle[600], skey[700];
		snprintf(needle, sizeof(needle), "\n%.*s\n", (int)(nl - p), p);
		if (!old || !strstr(old->policies, needle)) {
			snprintf(skey, sizeof(skey), "status/tp/%.*s", (int)(nl - p), p);
			pl_wq_add_after(o->q, skey, OP_STATUS_RECOUNT_NS);
		}
		p = nl + 1;
	}
	if (identity && identity[0] && (!old || strcmp(old->identity, identity) != 0)) {
		char skey[700];
		snprintf(skey, sizeof(skey), "status/mi/%s", identity);
		pl_wq_add_after(o->q, skey, OP_STATUS_RECOUNT_NS);
	}
	pl_buf_free(&pol);
	entry_free(old);
}

void op_rendered_forget(op *o, const char *ns, const char *name)
{
	char key[600];
	const char *old_key = NULL;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	pthread_mutex_lock(&o->mu);
	struct op_rendered *old = pl_hmap_del(&o->rendered, key, &old_key);
	pthread_mutex_unlock(&o->mu);
	entry_free(old);
}

int op_rendered_lookup(op *o, const char *ns, const char *name, uint64_t gen, const char *policy,
		       const char *identity, char *hash, size_t hashlen)
{
	char key[600], needle[600];
	int rc = -1;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	pthread_mutex_lock(&o->mu);
	struct op_rendered *e = pl_hmap_get(&o->rendered, key);
	if (e && e->gen == gen) {
		snprintf(needle, sizeof(needle), "\n%s\n", policy ? policy : "");
		bool applies = policy ? strstr(e->policies, needle) != NULL : strcmp(e->identity, identity) == 0;
		rc = applies ? 1 : 0;
		snprintf(hash, hashlen, "%s", e->hash);
	}
	pthread_mutex_unlock(&o->mu);
	return rc;
}

bool op_rendered_hash(op *o, const char *ns, const char *name, char *hash, size_t len)
{
	char key[600];

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	pthread_mutex_lock(&o->mu);
	struct op_rendered *e = pl_hmap_get(&o->rendered, key);
	snprintf(hash, len, "%s", e ? e->hash : "");
	pthread_mutex_unlock(&o->mu);
	return e != NULL;
}

bool op_rendered_current(op *o, const char *ns, const char *name, const char *hash)
{
	char key[600];
	bool yes;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	pthread_mutex_lock(&o->mu);
	struct op_rendered *e = pl_hmap_get(&o->rendered, key);
	yes = e && o->snap && !o->snap_dirty && e->gen == o->snap->gen && strcmp(e->hash, hash) == 0;
	pthread_mutex_unlock(&o->mu);
	return yes;
}

void op_rendered_free(op *o)
{
	size_t it = 0;
	pl_hmap_slot *sl;

	while ((sl = pl_hmap_next(&o->rendered, &it)))
		entry_free(sl->value);
	pl_hmap_free(&o->rendered);
}
