/* byte_order.h - loads and stores of fixed-endianness integers from unaligned bytes. File formats
 * fix their byte order (safetensors: little-endian, IDX: big-endian) whatever the host's is; these
 * compile to a plain load (plus a byte swap where needed) on current compilers. */
#ifndef CNN_BYTE_ORDER_H
#define CNN_BYTE_ORDER_H

#include <stdint.h>
#include <string.h>

static inline uint16_t cnn_load_le16(const unsigned char *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t cnn_load_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t cnn_load_le64(const unsigned char *p) {
    return (uint64_t)cnn_load_le32(p) | (uint64_t)cnn_load_le32(p + 4) << 32;
}
static inline uint16_t cnn_load_be16(const unsigned char *p) {
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t cnn_load_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline uint64_t cnn_load_be64(const unsigned char *p) {
    return (uint64_t)cnn_load_be32(p) << 32 | (uint64_t)cnn_load_be32(p + 4);
}
static inline void cnn_store_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
static inline void cnn_store_le64(unsigned char *p, uint64_t v) {
    cnn_store_le32(p, (uint32_t)v);
    cnn_store_le32(p + 4, (uint32_t)(v >> 32));
}

static inline float cnn_float_from_bits(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
static inline uint32_t cnn_bits_from_float(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}
static inline double cnn_double_from_bits(uint64_t bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* True when the host stores floats in little-endian order, so F32 data can be copied as is. */
static inline int cnn_host_is_little_endian(void) {
    const uint32_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

#endif /* CNN_BYTE_ORDER_H */
