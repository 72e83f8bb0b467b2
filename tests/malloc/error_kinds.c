/* One bad free per run, through the plain C allocation functions, for the malloc shim's error
 * reports (check_error_kind.py runs it under LD_PRELOAD). With SPANHEAP_ON_ERROR=abort the process
 * must die of SIGABRT right after the report; with report it must go on, with a working heap.
 *
 *   malloc_error_kinds double_free|invalid_free|interior_free|foreign_free */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps the compiler from reasoning about (and warning on) the bad frees below. */
static void* volatile launder_slot;
static void* launder(void* p) {
  launder_slot = p;
  return launder_slot;
}

static int bad_free(const char* kind) {
  if (strcmp(kind, "double_free") == 0) {
    char* p = malloc(64);
    char* again = launder(p);
    free(p);
    free(again);
  } else if (strcmp(kind, "invalid_free") == 0) {
    /* The slot after the only object of a rarely used class: a free slot that holds nothing. */
    char* p = malloc(20000);
    free(launder(p + malloc_usable_size(p)));
    free(p);
  } else if (strcmp(kind, "interior_free") == 0) {
    char* p = malloc(64);
    free(launder(p + 16));
    free(p);
  } else if (strcmp(kind, "foreign_free") == 0) {
    int on_stack = 0;
    free(launder(&on_stack));
  } else {
    fprintf(stderr, "unknown kind '%s'\n", kind);
    return 2;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "--version") == 0) {
    const char* slash = strrchr(argv[0], '/');
    printf("%s (spanheap %s)\n", slash != NULL ? slash + 1 : argv[0], SPANHEAP_VERSION);
    return 0;
  }
  if (argc != 2) {
    fprintf(stderr, "usage: %s double_free|invalid_free|interior_free|foreign_free\n", argv[0]);
    return 2;
  }
  const int rc = bad_free(argv[1]);
  if (rc != 0) return rc;
  /* Report mode: the heap must still work after the report. */
  for (int i = 0; i < 10000; i++) {
    unsigned char* p = malloc((size_t)(i % 500) + 1);
    if (p == NULL) return 3;
    memset(p, i & 0xFF, (size_t)(i % 500) + 1);
    free(p);
  }
  puts("survived");
  return 0;
}
