/* Unit tests for lib/json: YAML and JSON loading, canonical and pretty dumps, descriptions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "json/json.h"

static int yaml(const char *s, pl_docs *d)
{
	return pl_yaml_load(s, strlen(s), d);
}

/* Loads s, which must succeed with exactly one document, and returns its root (owned by d). */
static json_t *yaml_one(const char *s, pl_docs *d)
{
	int rc = yaml(s, d);
	if (rc != 0)
		print_error("unexpected YAML error: %s\n", d->error);
	assert_int_equal(rc, 0);
	assert_false(d->failed);
	assert_int_equal(d->n, 1);
	assert_non_null(d->v[0].root);
	return d->v[0].root;
}

/* Loads s, which must fail; checks the message holds each of the NULL-terminated needles. */
static void yaml_fails(const char *s, pl_docs *d, ...)
{
	va_list ap;
	int rc = yaml(s, d);

	assert_int_equal(rc, -EINVAL);
	assert_true(d->failed);
	assert_true(d->error[0] != '\0');
	va_start(ap, d);
	for (const char *needle; (needle = va_arg(ap, const char *)) != NULL;) {
		if (!strstr(d->error, needle))
			print_error("error \"%s\" lacks \"%s\"\n", d->error, needle);
		assert_non_null(strstr(d->error, needle));
	}
	va_end(ap);
}

static void assert_json_eq(const json_t *got, const char *want_json)
{
	json_error_t err;
	json_t *want = json_loads(want_json, JSON_DECODE_ANY, &err);
	assert_non_null(want);
	if (!json_equal(got, want)) {
		char *s = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		print_error("got %s want %s\n", s ? s : "(null)", want_json);
		free(s);
	}
	assert_true(json_equal(got, want));
	json_decref(want);
}

/* ---------- streams ---------- */

static void test_multi_document(void **state)
{
	(void)state;
	pl_docs d;

	assert_int_equal(yaml("a: 1\n---\n---\nb: 2\n", &d), 0);
	assert_false(d.failed);
	assert_int_equal(d.n, 3);
	assert_json_eq(d.v[0].root, "{\"a\": 1}");
	assert_int_equal(d.v[0].index, 1);
	assert_int_equal(d.v[0].line, 1);
	assert_null(d.v[1].root);
	assert_int_equal(d.v[1].index, 2);
	assert_int_equal(d.v[1].line, 2);
	assert_json_eq(d.v[2].root, "{\"b\": 2}");
	assert_int_equal(d.v[2].index, 3);
	assert_int_equal(d.v[2].line, 3);
	pl_docs_free(&d);
	assert_int_equal(d.n, 0);
	assert_null(d.v);

	/* Explicit start markers, comments and an end marker. */
	const char *s = "# header comment\n"
			"---\n"
			"kind: A\n"
			"...\n"
			"---\n"
			"# nothing here\n"
			"---\n"
			"\n"
			"kind: C\n"
			"list:\n"
			"- 1\n";
	assert_int_equal(yaml(s, &d), 0);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.v[0].line, 2);
	assert_string_equal(pl_json_get_str(d.v[0].root, "kind"), "A");
	assert_int_equal(d.v[1].line, 5);
	assert_null(d.v[1].root);
	assert_int_equal(d.v[2].index, 3);
	assert_int_equal(d.v[2].line, 7);
	assert_json_eq(d.v[2].root, "{\"kind\": \"C\", \"list\": [1]}");
	pl_docs_free(&d);

	/* An explicit null document is also reported as an empty root. */
	assert_int_equal(yaml("--- ~\n--- null\n--- 5\n", &d), 0);
	assert_int_equal(d.n, 3);
	assert_null(d.v[0].root);
	assert_null(d.v[1].root);
	assert_json_eq(d.v[2].root, "5");
	pl_docs_free(&d);
}

static void test_empty_stream(void **state)
{
	(void)state;
	pl_docs d;

	assert_int_equal(yaml("", &d), 0);
	assert_false(d.failed);
	assert_int_equal(d.n, 0);
	pl_docs_free(&d);

	assert_int_equal(yaml("# only a comment\n\n", &d), 0);
	assert_int_equal(d.n, 0);
	pl_docs_free(&d);

	/* Length is honoured: bytes past len are not read. */
	const char *s = "a: 1\n---\nb: 2\n";
	assert_int_equal(pl_yaml_load(s, 5, &d), 0);
	assert_int_equal(d.n, 1);
	assert_json_eq(d.v[0].root, "{\"a\": 1}");
	pl_docs_free(&d);
}

/* ---------- scalar resolution ---------- */

static void test_scalars(void **state)
{
	(void)state;
	pl_docs d;
	const char *s = "port: 80\n"
			"quoted: \"80\"\n"
			"single: '80'\n"
			"real: 1.5\n"
			"t1: true\n"
			"t2: yes\n"
			"t3: on\n"
			"t4: Y\n"
			"f1: False\n"
			"f2: off\n"
			"f3: no\n"
			"n1: ~\n"
			"n2: null\n"
			"n3:\n"
			"hex: 0x1F\n"
			"under: 1_000\n"
			"octal: 017\n"
			"notoctal: 08\n"
			"zero: 0\n"
			"name: web\n"
			"tagged: !!str 80\n"
			"tagged_int: !!int \"42\"\n"
			"big: 99999999999999999999\n"
			"max: 9223372036854775807\n"
			"neg: -42\n"
			"exp: 1e3\n"
			"qtrue: \"true\"\n"
			"qnull: 'null'\n"
			"ver: 1.2.3\n"
			"80: numeric key\n";
	json_t *r = yaml_one(s, &d);
	json_t *v;

	v = json_object_get(r, "port");
	assert_true(json_is_integer(v));
	assert_int_equal(json_integer_value(v), 80);
	v = json_object_get(r, "quoted");
	assert_true(json_is_string(v));
	assert_string_equal(json_string_value(v), "80");
	assert_string_equal(pl_json_get_str(r, "single"), "80");
	v = json_object_get(r, "real");
	assert_true(json_is_real(v));
	assert_true(json_real_value(v) == 1.5);
	assert_true(json_is_true(json_object_get(r, "t1")));
	assert_true(json_is_true(json_object_get(r, "t2")));
	assert_true(json_is_true(json_object_get(r, "t3")));
	assert_true(json_is_true(json_object_get(r, "t4")));
	assert_true(json_is_false(json_object_get(r, "f1")));
	assert_true(json_is_false(json_object_get(r, "f2")));
	assert_true(json_is_false(json_object_get(r, "f3")));
	/* Nulls are present as JSON null, not absent. */
	for (const char *k = "n1"; k; k = strcmp(k, "n1") == 0 ? "n2" : strcmp(k, "n2") == 0 ? "n3" : NULL) {
		v = json_object_get(r, k);
		assert_non_null(v);
		assert_true(json_is_null(v));
	}
	v = json_object_get(r, "hex");
	assert_true(json_is_integer(v));
	assert_int_equal(json_integer_value(v), 31);
	v = json_object_get(r, "under");
	assert_true(json_is_integer(v));
	assert_int_equal(json_integer_value(v), 1000);
	/* YAML 1.1 as kubectl reads it: a leading 0 is octal; 08 is not octal, so it is a float. */
	v = json_object_get(r, "octal");
	assert_true(json_is_integer(v));
	assert_int_equal(json_integer_value(v), 15);
	v = json_object_get(r, "notoctal");
	assert_true(json_is_real(v));
	assert_true(json_real_value(v) == 8.0);
	v = json_object_get(r, "zero");
	assert_true(json_is_integer(v));
	assert_int_equal(json_integer_value(v), 0);
	assert_string_equal(pl_json_get_str(r, "name"), "web");
	v = json_object_get(r, "tagged");
	assert_true(json_is_string(v));
	assert_string_equal(json_string_value(v), "80");
	v = json_object_get(r, "tagged_int");
	assert_true(json_is_integer(v));
	assert_int_equal(json_integer_value(v), 42);
	v = json_object_get(r, "big");
	assert_true(json_is_real(v));
	assert_true(json_real_value(v) == 1e20);
	v = json_object_get(r, "max");
	assert_true(json_is_integer(v));
	assert_true(json_integer_value(v) == INT64_MAX);
	v = json_object_get(r, "neg");
	assert_true(json_is_integer(v));
	assert_true(json_integer_value(v) == -42);
	v = json_object_get(r, "exp");
	assert_true(json_is_real(v));
	assert_true(json_real_value(v) == 1000.0);
	assert_string_equal(pl_json_get_str(r, "qtrue"), "true");
	assert_string_equal(pl_json_get_str(r, "qnull"), "null");
	assert_string_equal(pl_json_get_str(r, "ver"), "1.2.3");
	assert_string_equal(pl_json_get_str(r, "80"), "numeric key");
	assert_int_equal(json_object_size(r), 30);
	pl_docs_free(&d);
}

static void test_flow_and_nesting(void **state)
{
	(void)state;
	pl_docs d;
	json_t *r = yaml_one("{\"a\": [1, 2.5, \"x\", {b: [true, null]}], c: {}}\n", &d);
	assert_json_eq(r, "{\"a\": [1, 2.5, \"x\", {\"b\": [true, null]}], \"c\": {}}");
	pl_docs_free(&d);

	r = yaml_one("spec:\n"
		     "  ports:\n"
		     "  - name: http\n"
		     "    port: 8080\n"
		     "  - name: grpc\n"
		     "    port: 9090\n"
		     "  empty: []\n",
		     &d);
	assert_json_eq(r, "{\"spec\": {\"ports\": [{\"name\": \"http\", \"port\": 8080},"
			  " {\"name\": \"grpc\", \"port\": 9090}], \"empty\": []}}");
	pl_docs_free(&d);
}

static void test_block_literal(void **state)
{
	(void)state;
	pl_docs d;
	json_t *r = yaml_one("script: |\n"
			     "  line one\n"
			     "    indented\n"
			     "\n"
			     "  after blank\n"
			     "strip: |-\n"
			     "  x\n"
			     "  y\n"
			     "folded: >\n"
			     "  a\n"
			     "  b\n"
			     "next: 1\n",
			     &d);
	assert_string_equal(pl_json_get_str(r, "script"), "line one\n  indented\n\nafter blank\n");
	assert_string_equal(pl_json_get_str(r, "strip"), "x\ny");
	assert_string_equal(pl_json_get_str(r, "folded"), "a b\n");
	assert_int_equal(json_integer_value(json_object_get(r, "next")), 1);
	pl_docs_free(&d);
}

/* ---------- anchors, aliases, merge keys ---------- */

static void test_anchors_aliases(void **state)
{
	(void)state;
	pl_docs d;
	json_t *r;

	/* An alias to an anchor that is never defined, in key position. */
	yaml_fails("a: 1\n*k2 : 1\n", &d, "unknown anchor", "k2", "line 2 column 1", NULL);
	pl_docs_free(&d);

	r = yaml_one("base: &b\n"
		     "  x: 1\n"
		     "  y: [1, 2]\n"
		     "copy: *b\n"
		     "list: [&v hello, *v, *v]\n"
		     "items:\n"
		     "  - &item {name: a}\n"
		     "  - *item\n"
		     "  - *b\n"
		     "&k key: value\n"
		     "other: *k\n"
		     "redef: &v 2\n"
		     "after: *v\n",
		     &d);
	assert_json_eq(json_object_get(r, "base"), "{\"x\": 1, \"y\": [1, 2]}");
	assert_json_eq(json_object_get(r, "copy"), "{\"x\": 1, \"y\": [1, 2]}");
	assert_json_eq(json_object_get(r, "list"), "[\"hello\", \"hello\", \"hello\"]");
	assert_json_eq(json_object_get(r, "items"),
		       "[{\"name\": \"a\"}, {\"name\": \"a\"}, {\"x\": 1, \"y\": [1, 2]}]");
	assert_string_equal(pl_json_get_str(r, "key"), "value");
	assert_string_equal(pl_json_get_str(r, "other"), "key");
	/* A redefined anchor: the latest definition wins. */
	assert_json_eq(json_object_get(r, "after"), "2");
	pl_docs_free(&d);

	/* Anchors do not carry over to the next document. */
	yaml_fails("a: &x 1\n---\nb: *x\n", &d, "unknown anchor", "x", "line 3", NULL);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.error_doc, 2);
	pl_docs_free(&d);
}

static void test_merge_keys(void **state)
{
	(void)state;
	pl_docs d;
	json_t *r = yaml_one("base: &base\n"
			     "  a: 1\n"
			     "  b: 2\n"
			     "derived:\n"
			     "  b: 20\n"
			     "  <<: *base\n"
			     "  c: 3\n"
			     "other:\n"
			     "  <<: *base\n"
			     "  a: 10\n"
			     "inline:\n"
			     "  <<: {z: 26}\n"
			     "  y: 25\n",
			     &d);
	assert_json_eq(json_object_get(r, "derived"), "{\"a\": 1, \"b\": 20, \"c\": 3}");
	assert_json_eq(json_object_get(r, "other"), "{\"a\": 10, \"b\": 2}");
	assert_json_eq(json_object_get(r, "inline"), "{\"y\": 25, \"z\": 26}");
	/* The merge source is untouched and no "<<" key leaks out. */
	assert_json_eq(json_object_get(r, "base"), "{\"a\": 1, \"b\": 2}");
	pl_docs_free(&d);

	r = yaml_one("a: &a {x: 1, y: 1}\n"
		     "b: &b {y: 2, z: 2}\n"
		     "m:\n"
		     "  <<: [*a, *b]\n"
		     "  w: 0\n"
		     "n:\n"
		     "  <<: [*b, *a]\n"
		     "  z: 9\n",
		     &d);
	/* Earlier sources win over later ones; explicit keys win over all. */
	assert_json_eq(json_object_get(r, "m"), "{\"x\": 1, \"y\": 1, \"z\": 2, \"w\": 0}");
	assert_json_eq(json_object_get(r, "n"), "{\"x\": 1, \"y\": 2, \"z\": 9}");
	pl_docs_free(&d);

	/* A quoted "<<" is an ordinary key. */
	r = yaml_one("\"<<\": 1\n", &d);
	assert_json_eq(r, "{\"<<\": 1}");
	pl_docs_free(&d);

	/* Merging a scalar is an error. */
	yaml_fails("a: 1\nb:\n  <<: 5\n", &d, "merge key", "line 3", NULL);
	pl_docs_free(&d);
	yaml_fails("x: &x [1]\nb:\n  <<: [*x]\n", &d, "merge key", NULL);
	pl_docs_free(&d);
}

/* ---------- errors ---------- */

static void test_error_duplicate_key(void **state)
{
	(void)state;
	pl_docs d;

	yaml_fails("a: 1\nb: 2\na: 3\n", &d, "duplicate key", "\"a\"", "line 3 column 1", NULL);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.error_doc, 1);
	pl_docs_free(&d);

	/* Nested, in a later document, and in flow style. */
	yaml_fails("x: 1\n---\nspec:\n  name: a\n  port: 1\n  name: b\n", &d, "duplicate key", "\"name\"",
		   "line 6 column 3", NULL);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.error_doc, 2);
	assert_json_eq(d.v[0].root, "{\"x\": 1}");
	pl_docs_free(&d);

	yaml_fails("{k: 1, k: 2}\n", &d, "duplicate key", "\"k\"", "line 1", NULL);
	pl_docs_free(&d);

	/* A first value of null still counts as present. */
	yaml_fails("a:\na: 1\n", &d, "duplicate key", "\"a\"", "line 2 column 1", NULL);
	pl_docs_free(&d);

	/* Same key in different maps is fine. */
	json_t *r = yaml_one("a: {k: 1}\nb: {k: 2}\n", &d);
	assert_json_eq(r, "{\"a\": {\"k\": 1}, \"b\": {\"k\": 2}}");
	pl_docs_free(&d);
}

static void test_error_unknown_alias(void **state)
{
	(void)state;
	pl_docs d;

	yaml_fails("a: 1\nb: *nope\n", &d, "unknown anchor", "nope", "line 2 column 4", NULL);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.error_doc, 1);
	pl_docs_free(&d);

	/* An alias used before its anchor is defined. */
	yaml_fails("a: *later\nb: &later 1\n", &d, "unknown anchor", "later", "line 1", NULL);
	pl_docs_free(&d);

	/* A node cannot alias itself (no cycles). */
	yaml_fails("a: &a [1, *a]\n", &d, "unknown anchor", "line 1 column 11", NULL);
	pl_docs_free(&d);
}

static void test_error_syntax(void **state)
{
	(void)state;
	pl_docs d;

	/* Tab used for indentation. */
	yaml_fails("a:\n\tb: 1\n", &d, "line 2 column 1", "cannot start any token", NULL);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.error_doc, 1);
	assert_non_null(strstr(d.error, "column"));
	pl_docs_free(&d);

	/* Unclosed flow sequence. */
	yaml_fails("a: [1, 2\nb: 3\n", &d, "line 2 column 2", NULL);
	pl_docs_free(&d);

	/* Bad indentation. */
	yaml_fails("a:\n  b: 1\n c: 2\n", &d, "line 3 column 2", NULL);
	pl_docs_free(&d);
}

static void test_error_inf_nan(void **state)
{
	(void)state;
	pl_docs d;
	static const char *const bad[] = {"x: .inf\n", "x: -.Inf\n", "x: +.INF\n", "x: .nan\n", "x: .NaN\n"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		yaml_fails(bad[i], &d, "infinity", "line 1 column 4", NULL);
		assert_int_equal(d.n, 0);
		pl_docs_free(&d);
	}
	/* Out-of-range floats are refused too. */
	yaml_fails("x: 1e999\n", &d, "line 1", NULL);
	pl_docs_free(&d);
	/* Quoted, they are plain strings. */
	json_t *r = yaml_one("x: \".inf\"\n", &d);
	assert_string_equal(pl_json_get_str(r, "x"), ".inf");
	pl_docs_free(&d);
}

static void test_error_non_scalar_key(void **state)
{
	(void)state;
	pl_docs d;

	yaml_fails("? {a: 1}\n: x\n", &d, "mapping keys must be scalars", "line 1 column 3", NULL);
	assert_int_equal(d.n, 0);
	pl_docs_free(&d);
	yaml_fails("ok: 1\n? [a, b]\n: x\n", &d, "mapping keys must be scalars", "line 2", NULL);
	pl_docs_free(&d);
	/* An alias to a mapping in key position. */
	yaml_fails("a: &m {x: 1}\n*m : v\n", &d, "mapping keys must be scalars", "line 2", NULL);
	pl_docs_free(&d);
}

static void test_error_depth(void **state)
{
	(void)state;
	pl_docs d;
	char buf[400];
	int depth = 300;

	memset(buf, '[', (size_t)depth);
	buf[depth] = '\0';
	yaml_fails(buf, &d, "nesting deeper than 256", "line 1 column 257", NULL);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.error_doc, 1);
	pl_docs_free(&d);

	/* Exactly the limit is accepted, one more is not. */
	char *big = malloc(2 * (PL_YAML_MAX_DEPTH + 1) + 1);
	assert_non_null(big);
	int n = PL_YAML_MAX_DEPTH;
	memset(big, '[', (size_t)n);
	memset(big + n, ']', (size_t)n);
	big[2 * n] = '\0';
	assert_int_equal(yaml(big, &d), 0);
	assert_int_equal(d.n, 1);
	assert_true(json_is_array(d.v[0].root));
	pl_docs_free(&d);
	n = PL_YAML_MAX_DEPTH + 1;
	memset(big, '[', (size_t)n);
	memset(big + n, ']', (size_t)n);
	big[2 * n] = '\0';
	yaml_fails(big, &d, "nesting deeper", NULL);
	pl_docs_free(&d);
	free(big);
}

static char *billion_laughs(const char *prefix)
{
	static const char *const names[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
	size_t cap = 8192;
	char *s = malloc(cap);
	size_t o = 0;

	assert_non_null(s);
	o += (size_t)snprintf(s + o, cap - o, "%sa: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol,lol]\n", prefix);
	for (int lvl = 1; lvl < 9; lvl++) {
		const char *p = names[lvl - 1];
		o += (size_t)snprintf(s + o, cap - o, "%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n",
				      names[lvl], names[lvl], p, p, p, p, p, p, p, p, p, p);
		assert_true(o < cap);
	}
	return s;
}

static void test_error_billion_laughs(void **state)
{
	(void)state;
	pl_docs d;
	char *s = billion_laughs("");
	clock_t t0 = clock();

	yaml_fails(s, &d, "more than", "1000000", "nodes", NULL);
	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	assert_true(secs < 2.0);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.error_doc, 1);
	/* Level f (1,111,111 nodes) is the first to pass the limit, on line 6. */
	assert_non_null(strstr(d.error, "line 6"));
	pl_docs_free(&d);
	free(s);

	/* The same after a good document: that one is kept. */
	s = billion_laughs("ok: 1\n---\n");
	yaml_fails(s, &d, "more than", NULL);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.error_doc, 2);
	assert_json_eq(d.v[0].root, "{\"ok\": 1}");
	pl_docs_free(&d);
	free(s);

	/* A few levels (11,111 nodes) are fine and expand correctly. */
	json_t *r = yaml_one("a: &a [x,x,x,x,x,x,x,x,x,x]\n"
			     "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
			     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
			     "d: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
			     &d);
	json_t *dd = json_object_get(r, "d");
	assert_int_equal(json_array_size(dd), 10);
	json_t *leaf = json_array_get(json_array_get(json_array_get(dd, 9), 9), 9);
	assert_string_equal(json_string_value(json_array_get(leaf, 9)), "x");
	pl_docs_free(&d);
}

static void test_error_nul(void **state)
{
	(void)state;
	pl_docs d;

	yaml_fails("a: 1\nb: \"x\\0y\"\n", &d, "NUL", "line 2", NULL);
	assert_int_equal(d.n, 0);
	pl_docs_free(&d);
	yaml_fails("\"k\\0\": 1\n", &d, "NUL", NULL);
	pl_docs_free(&d);
	/* Other escapes are fine. */
	json_t *r = yaml_one("b: \"x\\ty\\u00e9\"\n", &d);
	assert_string_equal(pl_json_get_str(r, "b"), "x\ty\xc3\xa9");
	pl_docs_free(&d);
}

static void test_error_keeps_earlier_docs(void **state)
{
	(void)state;
	pl_docs d;

	yaml_fails("a: 1\n---\nb: 2\n---\nc: [1, 2\n", &d, "line", NULL);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.error_doc, 3);
	assert_json_eq(d.v[0].root, "{\"a\": 1}");
	assert_json_eq(d.v[1].root, "{\"b\": 2}");
	assert_int_equal(d.v[1].index, 2);
	assert_int_equal(d.v[1].line, 2);
	pl_docs_free(&d);

	/* An empty document before the failing one counts as a document. */
	yaml_fails("a: 1\n---\n---\nx: .inf\n", &d, "infinity", "line 4", NULL);
	assert_int_equal(d.n, 2);
	assert_null(d.v[1].root);
	assert_int_equal(d.error_doc, 3);
	pl_docs_free(&d);

	/* Error in the first document: nothing kept. */
	yaml_fails("x: .inf\n---\na: 1\n", &d, "infinity", NULL);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.error_doc, 1);
	pl_docs_free(&d);
}

/* ---------- JSON ---------- */

static void test_json_load(void **state)
{
	(void)state;
	pl_docs d;
	const char *s = "{\"kind\": \"Mesh\", \"spec\": {\"ports\": [80, 443], \"tls\": true, \"x\": null}}";

	assert_int_equal(pl_json_load(s, strlen(s), &d), 0);
	assert_false(d.failed);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.v[0].index, 1);
	assert_int_equal(d.v[0].line, 1);
	assert_string_equal(pl_json_get_str(d.v[0].root, "kind"), "Mesh");
	assert_json_eq(json_object_get(d.v[0].root, "spec"), "{\"ports\": [80, 443], \"tls\": true, \"x\": null}");
	pl_docs_free(&d);

	s = "{\"a\": 1, \"b\": 2, \"a\": 3}";
	assert_int_equal(pl_json_load(s, strlen(s), &d), -EINVAL);
	assert_true(d.failed);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.error_doc, 1);
	assert_non_null(strstr(d.error, "duplicate"));
	pl_docs_free(&d);

	s = "{\n  \"a\": 1,\n  \"b\": \n}";
	assert_int_equal(pl_json_load(s, strlen(s), &d), -EINVAL);
	assert_true(d.failed);
	assert_non_null(strstr(d.error, "line"));
	assert_non_null(strstr(d.error, "line 4"));
	pl_docs_free(&d);

	/* Exactly one document: trailing content is an error. */
	s = "{\"a\": 1}\n{\"b\": 2}\n";
	assert_int_equal(pl_json_load(s, strlen(s), &d), -EINVAL);
	assert_int_equal(d.n, 0);
	pl_docs_free(&d);

	/* Length is honoured. */
	s = "[1,2]garbage";
	assert_int_equal(pl_json_load(s, 5, &d), 0);
	assert_json_eq(d.v[0].root, "[1, 2]");
	pl_docs_free(&d);
}

static void test_json_dumps(void **state)
{
	(void)state;
	json_error_t err;
	json_t *v = json_loads("{\"b\":1,\"a\":[1,2]}", 0, &err);
	assert_non_null(v);

	char *c = pl_json_dump_canonical(v);
	assert_non_null(c);
	assert_string_equal(c, "{\"a\":[1,2],\"b\":1}");
	free(c);

	char *p = pl_json_dump_pretty(v);
	assert_non_null(p);
	assert_string_equal(p, "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": 1\n}\n");
	assert_int_equal(p[strlen(p) - 1], '\n');
	free(p);
	json_decref(v);

	/* Nested objects are sorted too; key order of the input does not matter. */
	json_t *x = json_loads("{\"z\": {\"y\": 1, \"x\": \"s p\"}, \"m\": [ {\"d\": 1, \"c\": 2} ]}", 0, &err);
	json_t *y = json_loads("{\"m\":[{\"c\":2,\"d\":1}],\"z\":{\"x\":\"s p\",\"y\":1}}", 0, &err);
	assert_non_null(x);
	assert_non_null(y);
	char *cx = pl_json_dump_canonical(x);
	char *cy = pl_json_dump_canonical(y);
	assert_string_equal(cx, "{\"m\":[{\"c\":2,\"d\":1}],\"z\":{\"x\":\"s p\",\"y\":1}}");
	assert_string_equal(cx, cy);
	free(cx);
	free(cy);
	json_decref(x);
	json_decref(y);

	/* Scalars can be dumped on their own. */
	json_t *i = json_integer(42);
	c = pl_json_dump_canonical(i);
	assert_string_equal(c, "42");
	free(c);
	p = pl_json_dump_pretty(i);
	assert_string_equal(p, "42\n");
	free(p);
	json_decref(i);
	json_t *e = json_object();
	p = pl_json_dump_pretty(e);
	assert_string_equal(p, "{}\n");
	free(p);
	json_decref(e);
}

static void check_describe(json_t *v, const char *want)
{
	char out[128];
	memset(out, 'X', sizeof(out));
	pl_json_describe(v, out, sizeof(out));
	assert_string_equal(out, want);
	json_decref(v);
}

static void test_json_describe(void **state)
{
	(void)state;
	check_describe(json_string("abc"), "\"abc\"");
	check_describe(json_string(""), "\"\"");
	check_describe(json_string("a\nb\tc"), "\"a?b?c\"");
	check_describe(json_integer(12), "12");
	check_describe(json_integer(-7), "-7");
	check_describe(json_real(1.5), "1.5");
	check_describe(json_true(), "true");
	check_describe(json_false(), "false");
	check_describe(json_null(), "null");
	check_describe(json_object(), "an object");
	check_describe(json_array(), "a list");

	/* 64 characters are shown whole; longer strings are cut with "...". */
	char s[101];
	char want[128];
	memset(s, 'a', 64);
	s[64] = '\0';
	snprintf(want, sizeof(want), "\"%s\"", s);
	check_describe(json_string(s), want);
	memset(s, 'b', 100);
	s[100] = '\0';
	char b64[65];
	memset(b64, 'b', 64);
	b64[64] = '\0';
	snprintf(want, sizeof(want), "\"%s...\"", b64);
	check_describe(json_string(s), want);

	/* A small buffer is never overrun and stays terminated. */
	char small[16];
	memset(small, 'X', sizeof(small));
	json_t *str = json_string(s);
	pl_json_describe(str, small, sizeof(small));
	assert_true(strlen(small) < sizeof(small));
	assert_int_equal(small[0], '"');
	assert_int_equal(small[strlen(small) - 1], '"');
	char tiny[4];
	pl_json_describe(str, tiny, sizeof(tiny));
	assert_true(strlen(tiny) < sizeof(tiny));
	json_decref(str);
}

static void test_json_get_str(void **state)
{
	(void)state;
	json_error_t err;
	json_t *o = json_loads("{\"s\": \"v\", \"n\": 1, \"z\": null}", 0, &err);
	assert_non_null(o);
	assert_string_equal(pl_json_get_str(o, "s"), "v");
	assert_null(pl_json_get_str(o, "n"));
	assert_null(pl_json_get_str(o, "z"));
	assert_null(pl_json_get_str(o, "missing"));
	json_t *a = json_array();
	assert_null(pl_json_get_str(a, "s"));
	json_decref(a);
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_multi_document),
		cmocka_unit_test(test_empty_stream),
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_flow_and_nesting),
		cmocka_unit_test(test_block_literal),
		cmocka_unit_test(test_anchors_aliases),
		cmocka_unit_test(test_merge_keys),
		cmocka_unit_test(test_error_duplicate_key),
		cmocka_unit_test(test_error_unknown_alias),
		cmocka_unit_test(test_error_syntax),
		cmocka_unit_test(test_error_inf_nan),
		cmocka_unit_test(test_error_non_scalar_key),
		cmocka_unit_test(test_error_depth),
		cmocka_unit_test(test_error_billion_laughs),
		cmocka_unit_test(test_error_nul),
		cmocka_unit_test(test_error_keeps_earlier_docs),
		cmocka_unit_test(test_json_load),
		cmocka_unit_test(test_json_dumps),
		cmocka_unit_test(test_json_describe),
		cmocka_unit_test(test_json_get_str),
	};
	return cmocka_run_group_tests(tests, 0, NULL);
}
