/* The original destination of a redirected connection (SO_ORIGINAL_DST and its IPv6 form). */
#ifndef PILLION_SIDECAR_ORIG_H
#define PILLION_SIDECAR_ORIG_H

#include <stdbool.h>
#include <sys/socket.h>

/* 0 or -errno (-ENOENT: the connection was not redirected). */
int px_original_dst(int fd, struct sockaddr_storage *ss, socklen_t *len);
/* True when a and b are the same address and port. */
bool px_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
int px_addr_port(const struct sockaddr_storage *ss);
/* The address part as text (no port). */
void px_addr_ip(const struct sockaddr_storage *ss, char *out, size_t outlen);

#endif
