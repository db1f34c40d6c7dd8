/* The process-wide random generator: xoshiro256** seeded through splitmix64. Integer arithmetic only
 * until the final conversion, so one seed gives the same stream on every machine. */
#include <math.h>
#include <pthread.h>

#include "internal.h"

static uint64_t state[4] = {0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 1};
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_locked(void) {
    uint64_t result = rotl(state[1] * 5, 7) * 9;
    uint64_t t = state[1] << 17;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= t;
    state[3] = rotl(state[3], 45);
    return result;
}

void cnn_manual_seed(uint64_t seed) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < 4; i++) {
        seed += 0x9E3779B97F4A7C15ull;
        uint64_t z = seed;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        state[i] = z ^ (z >> 31);
    }
    pthread_mutex_unlock(&lock);
}

void cnn_rng_get_state(uint64_t out[4]) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < 4; i++) out[i] = state[i];
    pthread_mutex_unlock(&lock);
}

void cnn_rng_set_state(const uint64_t in[4]) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < 4; i++) state[i] = in[i];
    if (!(state[0] | state[1] | state[2] | state[3])) state[3] = 1; /* the all-zero state is a fixed point */
    pthread_mutex_unlock(&lock);
}

static double to_unit(uint64_t x) { return (double)(x >> 11) * 0x1.0p-53; }

double cnn_rng_uniform(void) {
    pthread_mutex_lock(&lock);
    uint64_t x = next_locked();
    pthread_mutex_unlock(&lock);
    return to_unit(x);
}

/* Box-Muller without caching the second value, so the stream position depends only on the count of
 * draws. */
static double normal_from(uint64_t a, uint64_t b) {
    double u1 = 1.0 - to_unit(a); /* (0, 1]: log is finite */
    double u2 = to_unit(b);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double cnn_rng_normal(void) {
    pthread_mutex_lock(&lock);
    uint64_t a = next_locked(), b = next_locked();
    pthread_mutex_unlock(&lock);
    return normal_from(a, b);
}

/* Bulk fills take the lock once. */
void cnn_rng_fill_uniform(float *out, int64_t n, float low, float high) {
    pthread_mutex_lock(&lock);
    for (int64_t i = 0; i < n; i++) out[i] = (float)(low + (high - low) * to_unit(next_locked()));
    pthread_mutex_unlock(&lock);
}

void cnn_rng_fill_normal(float *out, int64_t n, float mean, float std) {
    pthread_mutex_lock(&lock);
    for (int64_t i = 0; i < n; i++) {
        uint64_t a = next_locked(), b = next_locked();
        out[i] = (float)(mean + std * normal_from(a, b));
    }
    pthread_mutex_unlock(&lock);
}

/* Raw 64-bit draws, e.g. to seed a per-batch generator for parallel work. */
uint64_t cnn_rng_next_u64(void) {
    pthread_mutex_lock(&lock);
    uint64_t x = next_locked();
    pthread_mutex_unlock(&lock);
    return x;
}
