/* YAML streams to jansson values, resolved the way Kubernetes' YAML decoder does; the only user of libyaml. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/buf.h"
#include "base/hmap.h"
#include "json/json.h"

typedef struct frame {
	json_t *node;        /* object or array being filled */
	bool is_map;
	char *key;           /* pending key of a map; NULL while a key is expected */
	bool key_is_merge;   /* pending key is the merge key "<<" */
	json_t *merges;      /* merge sources, applied when the map ends */
	char *anchor;
	size_t nodes;        /* nodes in this subtree after alias expansion */
	yaml_mark_t mark;
} frame;

typedef struct anchor {
	char *name;
	json_t *node;
	size_t nodes;
} anchor;

typedef struct conv {
	frame stack[PL_YAML_MAX_DEPTH];
	int depth;
	anchor *anchors;
	size_t nanchors, capanchors;
	pl_hmap anchor_index;    /* name -> 1 + index of its latest definition in anchors */
	size_t doc_nodes;
	json_t *root;
	bool have_root;
	pl_docs *out;
	int docno;
} conv;

static int fail(conv *c, const yaml_mark_t *m, size_t offset, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Records the error of the current document; m names its line and column, or NULL for a byte offset. */
static int fail(conv *c, const yaml_mark_t *m, size_t offset, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->out->failed = true;
	c->out->error_doc = c->docno;
	if (m)
		snprintf(c->out->error, sizeof(c->out->error), "line %zu column %zu: %s", m->line + 1,
			 m->column + 1, msg);
	else
		snprintf(c->out->error, sizeof(c->out->error), "byte offset %zu: %s", offset, msg);
	return -EINVAL;
}

static void reset_doc(conv *c)
{
	while (c->depth > 0) {
		frame *f = &c->stack[--c->depth];
		json_decref(f->node);
		json_decref(f->merges);
		free(f->key);
		free(f->anchor);
	}
	for (size_t i = 0; i < c->nanchors; i++) {
		free(c->anchors[i].name);
		json_decref(c->anchors[i].node);
	}
	c->nanchors = 0;
	pl_hmap_free(&c->anchor_index);
	c->doc_nodes = 0;
	json_decref(c->root);
	c->root = NULL;
	c->have_root = false;
}

static void add_anchor(conv *c, const char *name, json_t *node, size_t nodes)
{
	if (c->nanchors == c->capanchors) {
		size_t cap = c->capanchors ? c->capanchors * 2 : 8;
		anchor *a = realloc(c->anchors, cap * sizeof(*a));
		if (!a)
			abort();
		c->anchors = a;
		c->capanchors = cap;
	}
	anchor *a = &c->anchors[c->nanchors++];
	a->name = strdup(name);
	if (!a->name)
		abort();
	a->node = json_incref(node);
	a->nodes = nodes;
	/* A redefined name points at its latest definition, as YAML requires. */
	pl_hmap_put(&c->anchor_index, a->name, (void *)(uintptr_t)c->nanchors);
}

static const anchor *find_anchor(const conv *c, const char *name)
{
	uintptr_t i = (uintptr_t)pl_hmap_get(&c->anchor_index, name);

	return i ? &c->anchors[i - 1] : NULL;
}

static int count_nodes(conv *c, size_t n, const yaml_mark_t *m)
{
	if (n > PL_YAML_MAX_NODES - c->doc_nodes)
		return fail(c, m, 0, "document expands to more than %d nodes (aliases?)", PL_YAML_MAX_NODES);
	c->doc_nodes += n;
	return 0;
}

/* Hands a finished value (reference stolen) to its parent, or makes it the document root. */
static int add_value(conv *c, json_t *v, size_t nodes, const yaml_mark_t *m)
{
	if (c->depth == 0) {
		c->root = v;
		c->have_root = true;
		return 0;
	}
	frame *f = &c->stack[c->depth - 1];
	f->nodes += nodes;
	if (!f->is_map) {
		json_array_append_new(f->node, v);
		return 0;
	}
	if (!f->key) {
		/* Only scalar keys reach here as strings; containers as keys are refused. */
		if (!json_is_string(v)) {
			json_decref(v);
			return fail(c, m, 0, "mapping keys must be scalars");
		}
		f->key = strdup(json_string_value(v));
		json_decref(v);
		if (!f->key)
			abort();
		if (json_object_get(f->node, f->key))
			return fail(c, m, 0, "duplicate key \"%s\"", f->key);
		return 0;
	}
	if (f->key_is_merge) {
		bool ok = json_is_object(v);
		if (json_is_array(v)) {
			size_t i;
			json_t *e;
			ok = true;
			json_array_foreach(v, i, e) ok = ok && json_is_object(e);
		}
		if (!ok) {
			json_decref(v);
			return fail(c, m, 0, "merge key << needs a mapping or a list of mappings");
		}
		if (!f->merges)
			f->merges = json_array();
		json_array_append_new(f->merges, v);
		f->key_is_merge = false;
	} else {
		json_object_set_new_nocheck(f->node, f->key, v);
	}
	free(f->key);
	f->key = NULL;
	return 0;
}

static void apply_merges(frame *f)
{
	size_t i, j;
	json_t *src, *e;
	const char *k;
	json_t *val;

	json_array_foreach(f->merges, i, src) {
		if (json_is_object(src)) {
			json_object_foreach(src, k, val) {
				if (!json_object_get(f->node, k))
					json_object_set(f->node, k, val);
			}
		} else {
			json_array_foreach(src, j, e) {
				json_object_foreach(e, k, val) {
					if (!json_object_get(f->node, k))
						json_object_set(f->node, k, val);
				}
			}
		}
	}
}

static bool is_one_of(const char *s, const char *const *list)
{
	for (; *list; list++) {
		if (strcmp(s, *list) == 0)
			return true;
	}
	return false;
}

static bool parse_int(const char *s, json_int_t *out)
{
	char clean[128];
	size_t n = 0;
	int base = 10;
	const char *p = s;
	bool neg = false;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	} else if (p[0] == '0' && p[1] == 'o') {
		base = 8;
		p += 2;
	} else if (p[0] == '0' && p[1] == 'b') {
		base = 2;
		p += 2;
	} else if (p[0] == '0' && p[1] >= '0' && p[1] <= '9') {
		/* YAML 1.1 (and kubectl): 017 is octal; 08 is not an integer at all. */
		base = 8;
		p += 1;
	}
	if (neg)
		clean[n++] = '-';
	for (; *p; p++) {
		if (*p == '_')
			continue;
		int d = (*p >= '0' && *p <= '9') ? *p - '0'
		      : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10
		      : (*p >= 'A' && *p <= 'F') ? *p - 'A' + 10 : 99;
		if (d >= base || n + 1 >= sizeof(clean))
			return false;
		clean[n++] = *p;
	}
	clean[n] = '\0';
	if (n == 0 || (neg && n == 1))
		return false;
	errno = 0;
	char *end;
	long long v = strtoll(clean, &end, base);
	if (errno || *end)
		return false;
	*out = (json_int_t)v;
	return true;
}

static bool looks_float(const char *s)
{
	const char *p = s;
	bool digits = false;

	if (*p == '-' || *p == '+')
		p++;
	while (*p >= '0' && *p <= '9') { p++; digits = true; }
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') { p++; digits = true; }
	}
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

enum { R_ANY, R_STR, R_INT, R_FLOAT, R_BOOL, R_NULL };

/* Resolves a plain scalar (or one with a core-schema tag) to a JSON value; NULL with *why set on error. */
static json_t *resolve(const char *s, size_t len, int want, const char **why)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
	static const char *const trues[] = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE",
					    "on", "On", "ON", NULL};
	static const char *const falses[] = {"n", "N", "no", "No", "NO", "false", "False", "FALSE",
					     "off", "Off", "OFF", NULL};
	static const char *const specials[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
					       "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN", NULL};
	json_int_t iv;

	if (want == R_STR)
		return json_stringn(s, len);
	if ((want == R_ANY || want == R_NULL) && is_one_of(s, nulls))
		return json_null();
	if (want == R_ANY || want == R_BOOL) {
		if (is_one_of(s, trues))
			return json_true();
		if (is_one_of(s, falses))
			return json_false();
	}
	if ((want == R_ANY || want == R_INT) && parse_int(s, &iv))
		return json_integer(iv);
	if (want == R_ANY || want == R_FLOAT || want == R_INT) {
		if (is_one_of(s, specials)) {
			*why = "infinity and NaN cannot be represented in JSON";
			return NULL;
		}
		if (looks_float(s)) {
			double d = strtod(s, NULL);
			if (!isfinite(d)) {
				*why = "number out of range";
				return NULL;
			}
			return json_real(d);
		}
	}
	if (want == R_ANY)
		return json_stringn(s, len);
	*why = "value does not match its tag";
	return NULL;
}

static int tag_kind(const char *tag)
{
	if (!tag)
		return R_ANY;
	if (strcmp(tag, "tag:yaml.org,2002:str") == 0 || strcmp(tag, "!") == 0)
		return R_STR;
	if (strcmp(tag, "tag:yaml.org,2002:int") == 0)
		return R_INT;
	if (strcmp(tag, "tag:yaml.org,2002:float") == 0)
		return R_FLOAT;
	if (strcmp(tag, "tag:yaml.org,2002:bool") == 0)
		return R_BOOL;
	if (strcmp(tag, "tag:yaml.org,2002:null") == 0)
		return R_NULL;
	return R_ANY;
}

static int on_scalar(conv *c, yaml_event_t *ev)
{
	const char *val = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	const char *why = "invalid scalar";
	frame *f = c->depth > 0 ? &c->stack[c->depth - 1] : NULL;
	int rc;

	if (memchr(val, '\0', len))
		return fail(c, &ev->start_mark, 0, "NUL character in a scalar");
	if ((rc = count_nodes(c, 1, &ev->start_mark)) < 0)
		return rc;
	if (f && f->is_map && !f->key) {
		/* Keys are kept as written: Kubernetes turns every scalar key into its string form. */
		if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag && strcmp(val, "<<") == 0) {
			f->key = strdup("<<");
			if (!f->key)
				abort();
			f->key_is_merge = true;
			return 0;
		}
		json_t *k = json_stringn(val, len);
		if (!k)
			return fail(c, &ev->start_mark, 0, "key is not valid UTF-8");
		if (ev->data.scalar.anchor)
			add_anchor(c, (const char *)ev->data.scalar.anchor, k, 1);
		return add_value(c, k, 1, &ev->start_mark);
	}
	int want = tag_kind(tag);
	if (want == R_ANY && ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		want = R_STR;
	json_t *v = resolve(val, len, want, &why);
	if (!v)
		return fail(c, &ev->start_mark, 0, "%s", why);
	if (ev->data.scalar.anchor)
		add_anchor(c, (const char *)ev->data.scalar.anchor, v, 1);
	return add_value(c, v, 1, &ev->start_mark);
}

static int on_alias(conv *c, yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	const anchor *a = find_anchor(c, name);
	int rc;

	if (!a)
		return fail(c, &ev->start_mark, 0, "unknown anchor \"%s\"", name);
	if ((rc = count_nodes(c, a->nodes, &ev->start_mark)) < 0)
		return rc;
	return add_value(c, json_incref(a->node), a->nodes, &ev->start_mark);
}

static int on_start(conv *c, yaml_event_t *ev, bool is_map)
{
	const yaml_char_t *anc = is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
	int rc;

	if (c->depth >= PL_YAML_MAX_DEPTH)
		return fail(c, &ev->start_mark, 0, "nesting deeper than %d levels", PL_YAML_MAX_DEPTH);
	if (c->depth > 0) {
		frame *p = &c->stack[c->depth - 1];
		if (p->is_map && !p->key)
			return fail(c, &ev->start_mark, 0, "mapping keys must be scalars");
	}
	if ((rc = count_nodes(c, 1, &ev->start_mark)) < 0)
		return rc;
	frame *f = &c->stack[c->depth++];
	memset(f, 0, sizeof(*f));
	f->is_map = is_map;
	f->node = is_map ? json_object() : json_array();
	f->nodes = 1;
	f->mark = ev->start_mark;
	if (anc) {
		f->anchor = strdup((const char *)anc);
		if (!f->anchor)
			abort();
	}
	return 0;
}

static int on_end(conv *c, yaml_event_t *ev)
{
	frame f = c->stack[--c->depth];

	if (f.key) {
		/* Cannot happen with a well-formed event stream; kept for safety. */
		free(f.key);
		f.key = NULL;
	}
	if (f.merges) {
		apply_merges(&f);
		json_decref(f.merges);
	}
	if (f.anchor) {
		add_anchor(c, f.anchor, f.node, f.nodes);
		free(f.anchor);
	}
	return add_value(c, f.node, f.nodes, &ev->start_mark);
}

static void push_doc(pl_docs *out, json_t *root, int index, int line)
{
	pl_doc *v = realloc(out->v, (out->n + 1) * sizeof(*v));
	if (!v)
		abort();
	out->v = v;
	out->v[out->n].root = json_is_null(root) ? NULL : root;
	if (json_is_null(root))
		json_decref(root);
	out->v[out->n].index = index;
	out->v[out->n].line = line;
	out->n++;
}

int pl_yaml_load(const char *buf, size_t len, pl_docs *out)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	conv *c = calloc(1, sizeof(*c));
	int rc = 0, doc_line = 1;
	bool done = false, in_doc = false;

	if (!c)
		abort();
	memset(out, 0, sizeof(*out));
	c->out = out;
	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	while (!done && rc == 0) {
		if (!yaml_parser_parse(&parser, &ev)) {
			yaml_mark_t m = parser.problem_mark;
			/* Between documents the error belongs to the next one. */
			if (!in_doc)
				c->docno++;
			/* Encoding errors carry a byte offset, not a line. */
			/* libyaml says "cannot start any token" of a tab: name it, the commonest cause. */
			bool tab = parser.error != YAML_READER_ERROR && m.index < len && buf[m.index] == '\t';
			rc = fail(c, parser.error == YAML_READER_ERROR ? NULL : &m, parser.problem_offset, "%s%s%s%s",
				  parser.problem ? parser.problem : "syntax error", parser.context ? " " : "",
				  parser.context ? parser.context : "",
				  tab ? " (a tab character: YAML indents with spaces only)" : "");
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			c->docno++;
			in_doc = true;
			doc_line = (int)ev.start_mark.line + 1;
			break;
		case YAML_DOCUMENT_END_EVENT:
			push_doc(out, c->have_root ? c->root : json_null(), c->docno, doc_line);
			c->root = NULL;
			reset_doc(c);
			in_doc = false;
			break;
		case YAML_MAPPING_START_EVENT:
			rc = on_start(c, &ev, true);
			break;
		case YAML_SEQUENCE_START_EVENT:
			rc = on_start(c, &ev, false);
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			rc = on_end(c, &ev);
			break;
		case YAML_SCALAR_EVENT:
			rc = on_scalar(c, &ev);
			break;
		case YAML_ALIAS_EVENT:
			rc = on_alias(c, &ev);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	reset_doc(c);
	free(c->anchors);
	free(c);
	yaml_parser_delete(&parser);
	return rc;
}

/* ---- jansson values to YAML: block style, keys in the object's own (insertion) order ---- */

/* A string may be written plain only when reading it back gives the same string (not yes, 017, null, ~). */
static bool plain_ok(const json_t *s)
{
	const char *v = json_string_value(s);
	size_t len = json_string_length(s);
	const char *why = NULL;

	if (strlen(v) != len || strcmp(v, "<<") == 0)
		return false;
	json_t *r = resolve(v, len, R_ANY, &why);
	bool ok = r && json_is_string(r);
	json_decref(r);
	return ok;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, size_t len, yaml_scalar_style_t style)
{
	yaml_event_t ev;

	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, 1, 1, style))
		return -1;
	return yaml_emitter_emit(em, &ev) ? 0 : -1;
}

static int emit_string(yaml_emitter_t *em, const json_t *s)
{
	const char *v = json_string_value(s);
	size_t len = json_string_length(s);
	yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;

	if (memchr(v, '\n', len))
		style = YAML_LITERAL_SCALAR_STYLE;  /* the emitter falls back to quoted where a block cannot say it */
	else if (!plain_ok(s))
		style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	return emit_scalar(em, v, len, style);
}

static int emit_value(yaml_emitter_t *em, const json_t *v)
{
	yaml_event_t ev;
	char num[64];
	size_t i;
	const char *k;
	json_t *e;

	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		bool flow = json_object_size(v) == 0;  /* {} */
		if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
							 flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return -1;
		json_object_foreach((json_t *)v, k, e) {
			json_t *key = json_string(k);
			int rc = key ? emit_string(em, key) : -1;
			json_decref(key);
			if (rc < 0 || emit_value(em, e) < 0)
				return -1;
		}
		if (!yaml_mapping_end_event_initialize(&ev) || !yaml_emitter_emit(em, &ev))
			return -1;
		return 0;
	}
	case JSON_ARRAY: {
		bool flow = json_array_size(v) == 0;  /* [] */
		if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
							  flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return -1;
		json_array_foreach(v, i, e) {
			if (emit_value(em, e) < 0)
				return -1;
		}
		if (!yaml_sequence_end_event_initialize(&ev) || !yaml_emitter_emit(em, &ev))
			return -1;
		return 0;
	}
	case JSON_STRING:
		return emit_string(em, v);
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return emit_scalar(em, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
	case JSON_REAL: {
		/* jansson's own rendering keeps a ".0" so the value reads back as a float. */
		char *s = json_dumps(v, JSON_ENCODE_ANY);
		int rc = s ? emit_scalar(em, s, strlen(s), YAML_PLAIN_SCALAR_STYLE) : -1;
		free(s);
		return rc;
	}
	case JSON_TRUE:
		return emit_scalar(em, "true", 4, YAML_PLAIN_SCALAR_STYLE);
	case JSON_FALSE:
		return emit_scalar(em, "false", 5, YAML_PLAIN_SCALAR_STYLE);
	case JSON_NULL:
		return emit_scalar(em, "null", 4, YAML_PLAIN_SCALAR_STYLE);
	}
	return -1;
}

static int write_buf(void *data, unsigned char *buf, size_t size)
{
	pl_buf_append(data, buf, size);
	return 1;
}

char *pl_yaml_dump(const json_t *v)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	pl_buf out = PL_BUF_INIT;
	int ok;

	if (!v || !yaml_emitter_initialize(&em))
		return NULL;
	yaml_emitter_set_output(&em, write_buf, &out);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_indent(&em, 2);
	yaml_emitter_set_width(&em, -1);   /* never fold long strings: one value, one line, stable diffs */
	yaml_emitter_set_break(&em, YAML_LN_BREAK);
	ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) && yaml_emitter_emit(&em, &ev) &&
	     yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) && yaml_emitter_emit(&em, &ev) &&
	     emit_value(&em, v) == 0 && yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&em, &ev) &&
	     yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&em, &ev) && yaml_emitter_flush(&em);
	yaml_emitter_delete(&em);
	if (!ok || !out.data) {
		pl_buf_free(&out);
		return NULL;
	}
	return out.data;  /* ownership passes to the caller */
}
