/* jansson helpers: loading one JSON document, canonical dumps, descriptions for messages. */
#include "json/json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pl_docs_free(pl_docs *docs)
{
	for (size_t i = 0; i < docs->n; i++)
		json_decref(docs->v[i].root);
	free(docs->v);
	docs->v = NULL;
	docs->n = 0;
}

int pl_json_load(const char *buf, size_t len, pl_docs *out)
{
	json_error_t err;

	memset(out, 0, sizeof(*out));
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
	if (!root) {
		out->failed = true;
		out->error_doc = 1;
		snprintf(out->error, sizeof(out->error), "line %d column %d: %s", err.line, err.column,
			 err.text);
		return -EINVAL;
	}
	out->v = calloc(1, sizeof(*out->v));
	if (!out->v)
		abort();
	out->v[0].root = root;
	out->v[0].index = 1;
	out->v[0].line = 1;
	out->n = 1;
	return 0;
}

char *pl_json_dump_canonical(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

char *pl_json_dump_pretty(const json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *r = realloc(s, n + 2);
	if (!r) {
		free(s);
		return NULL;
	}
	r[n] = '\n';
	r[n + 1] = '\0';
	return r;
}

void pl_json_describe(const json_t *v, char *out, size_t size)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		snprintf(out, size, "an object");
		break;
	case JSON_ARRAY:
		snprintf(out, size, "a list");
		break;
	case JSON_STRING: {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		/* Quote, truncated; control characters shown as '?' so messages stay one line. */
		size_t o = 0;
		if (size < 8) {
			snprintf(out, size, "\"\"");
			break;
		}
		out[o++] = '"';
		for (size_t i = 0; i < n && o + 5 < size; i++) {
			unsigned char c = (unsigned char)s[i];
			out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
			if (i == 63 && n > 64) {
				out[o++] = '.'; out[o++] = '.'; out[o++] = '.';
				break;
			}
		}
		out[o++] = '"';
		out[o] = '\0';
		break;
	}
	case JSON_INTEGER:
		snprintf(out, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(out, size, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(out, size, "true");
		break;
	case JSON_FALSE:
		snprintf(out, size, "false");
		break;
	default:
		snprintf(out, size, "null");
		break;
	}
}

const char *pl_json_get_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}
