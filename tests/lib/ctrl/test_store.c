/* The object cache: keys, resourceVersion dedup, relist deltas, namespace and owner indexes, handler calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctrl/store.h"

typedef struct seen {
	int added, updated, deleted;
	char last[200];
} seen;

static void handler(void *ctx, enum pl_store_event ev, const json_t *obj, const json_t *old)
{
	seen *s = ctx;
	char key[128];

	pl_store_key(obj, key, sizeof(key));
	snprintf(s->last, sizeof(s->last), "%s %s", ev == PL_STORE_ADDED ? "ADDED" : ev == PL_STORE_UPDATED ? "UPDATED" : "DELETED", key);
	if (ev == PL_STORE_ADDED) {
		assert_null(old);
		s->added++;
	} else if (ev == PL_STORE_UPDATED) {
		assert_non_null(old);
		s->updated++;
	} else {
		s->deleted++;
	}
}

static json_t *obj(const char *ns, const char *name, const char *rv, const char *owner)
{
	json_t *md = json_pack("{ssss}", "name", name, "resourceVersion", rv);
	if (ns)
		json_object_set_new(md, "namespace", json_string(ns));
	if (owner)
		json_object_set_new(md, "ownerReferences", json_pack("[{ssss}]", "uid", owner, "kind", "Pod"));
	return json_pack("{ssssso}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", md);
}

static void test_upsert_get_delete(void **state)
{
	(void)state;
	seen s = {0};
	pl_store *st = pl_store_new(handler, &s);
	json_t *a = obj("shop", "a", "1", NULL);
	pl_store_upsert(st, a);
	assert_int_equal(s.added, 1);
	/* The same resourceVersion again is no update (a relist or a resumed watch). */
	pl_store_upsert(st, a);
	assert_int_equal(s.updated, 0);
	json_t *a2 = obj("shop", "a", "2", NULL);
	pl_store_upsert(st, a2);
	assert_int_equal(s.updated, 1);
	json_t *got = pl_store_get(st, "shop/a");
	assert_ptr_equal(got, a2);
	json_decref(got);
	assert_null(pl_store_get(st, "shop/b"));
	json_t *ns = obj(NULL, "shop", "3", NULL);
	pl_store_upsert(st, ns);
	got = pl_store_get(st, "shop");
	assert_non_null(got);
	json_decref(got);
	pl_store_delete(st, a2);
	assert_int_equal(s.deleted, 1);
	assert_string_equal(s.last, "DELETED shop/a");
	assert_int_equal(pl_store_len(st), 1);
	json_decref(a);
	json_decref(a2);
	json_decref(ns);
	pl_store_free(st);
}

static void test_replace_reports_deltas(void **state)
{
	(void)state;
	seen s = {0};
	pl_store *st = pl_store_new(handler, &s);
	assert_false(pl_store_synced(st));
	json_t *first = json_array();
	json_array_append_new(first, obj("a", "x", "1", NULL));
	json_array_append_new(first, obj("a", "y", "1", NULL));
	json_array_append_new(first, obj("b", "z", "1", NULL));
	pl_store_replace(st, first);
	assert_true(pl_store_synced(st));
	assert_int_equal(s.added, 3);
	/* Relist after a 410: y changed, z is gone, w is new, x unchanged. */
	json_t *second = json_array();
	json_array_append_new(second, obj("a", "x", "1", NULL));
	json_array_append_new(second, obj("a", "y", "5", NULL));
	json_array_append_new(second, obj("b", "w", "6", NULL));
	pl_store_replace(st, second);
	assert_int_equal(s.added, 4);
	assert_int_equal(s.updated, 1);
	assert_int_equal(s.deleted, 1);
	assert_null(pl_store_get(st, "b/z"));
	assert_int_equal(pl_store_len(st), 3);
	json_decref(first);
	json_decref(second);
	pl_store_free(st);
}

static void test_indexes(void **state)
{
	(void)state;
	pl_store *st = pl_store_new(NULL, NULL);
	json_t *v[5] = {obj("a", "p2", "1", "uid-1"), obj("a", "p1", "1", "uid-1"), obj("b", "q", "1", "uid-2"),
			obj("a", "r", "1", NULL), obj("c", "s", "1", "uid-1")};
	for (int i = 0; i < 5; i++)
		pl_store_upsert(st, v[i]);
	json_t *l = pl_store_list(st, "a");
	assert_int_equal(json_array_size(l), 3);
	/* Sorted by key. */
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(l, 0), "metadata"), "name")), "p1");
	json_decref(l);
	l = pl_store_by_owner(st, "uid-1");
	assert_int_equal(json_array_size(l), 3);
	json_decref(l);
	l = pl_store_list(st, "nowhere");
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
	/* An update that changes the owner moves the object between owner indexes. */
	json_t *moved = obj("a", "p1", "2", "uid-2");
	pl_store_upsert(st, moved);
	l = pl_store_by_owner(st, "uid-2");
	assert_int_equal(json_array_size(l), 2);
	json_decref(l);
	l = pl_store_by_owner(st, "uid-1");
	assert_int_equal(json_array_size(l), 2);
	json_decref(l);
	/* Deleting the last of a namespace drops the index entry. */
	pl_store_delete(st, v[4]);
	l = pl_store_list(st, "c");
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
	l = pl_store_list(st, NULL);
	assert_int_equal(json_array_size(l), 4);
	json_decref(l);
	for (int i = 0; i < 5; i++)
		json_decref(v[i]);
	json_decref(moved);
	pl_store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_upsert_get_delete),
		cmocka_unit_test(test_replace_reports_deltas),
		cmocka_unit_test(test_indexes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
