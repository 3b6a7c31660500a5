/* kmem.h must compile as strict C99 with -Wall -Wextra -pedantic -Werror. */
#include "kmem.h"

int kmem_header_c99_probe(void);
int kmem_header_c99_probe(void)
{
    struct kmem_config cfg = KMEM_CONFIG_INIT;
    struct kmem_cache_fast f;
    (void)f;
    return (int)cfg.size + (int)sizeof(kmem_cpu_t) + (int)GFP_KERNEL;
}
