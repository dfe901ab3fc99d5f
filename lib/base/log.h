/* Structured logging: one JSON object per line on stderr (level, ts, msg). */
#ifndef PILLION_BASE_LOG_H
#define PILLION_BASE_LOG_H

typedef enum { PL_LOG_DEBUG, PL_LOG_INFO, PL_LOG_WARN, PL_LOG_ERROR } pl_log_level;

void pl_log_set_level(pl_log_level level);
/* Sets the level by its name (debug, info, warn, error): 0, or -1 for any other name. */
int pl_log_set_level_name(const char *name);
void pl_log(pl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) pl_log(PL_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  pl_log(PL_LOG_INFO, __VA_ARGS__)
#define log_warnx(...) pl_log(PL_LOG_WARN, __VA_ARGS__)
#define log_errorx(...) pl_log(PL_LOG_ERROR, __VA_ARGS__)

#endif
