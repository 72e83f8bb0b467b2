/* Pointers the next allocator handed out before the shim started (here: glibc's malloc, then the
 * shim loaded with dlopen) must not crash the shim's free, realloc or malloc_usable_size; a pointer
 * nobody allocated still gets its foreign_free report.
 *
 *   malloc_dlopen_foreign <path of libspanheap_malloc.so> */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*free_fn)(void*);
typedef void* (*realloc_fn)(void*, size_t);
typedef size_t (*usable_fn)(void*);

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "--version") == 0) {
    const char* slash = strrchr(argv[0], '/');
    printf("%s (spanheap %s)\n", slash != NULL ? slash + 1 : argv[0], SPANHEAP_VERSION);
    return 0;
  }
  if (argc != 2) {
    fprintf(stderr, "usage: %s <libspanheap_malloc.so>\n", argv[0]);
    return 2;
  }
  char* early[3];
  for (int i = 0; i < 3; i++) {
    early[i] = malloc(100 + (size_t)i);
    memset(early[i], 'a' + i, 100);
  }
  /* The reports go to a log this test reads back (stderr stays free for the test's own output). */
  char log[] = "/tmp/spanheap-dlopen-XXXXXX";
  const int fd = mkstemp(log);
  if (fd < 0) return 2;
  setenv("SPANHEAP_ERROR_LOG", log, 1);
  setenv("SPANHEAP_ON_ERROR", "report", 1);
  void* shim = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (shim == NULL) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 2;
  }
  /* dlsym returns an object pointer; POSIX guarantees the round trip, ISO C spells it memcpy. */
  void* sym[3] = {dlsym(shim, "free"), dlsym(shim, "realloc"), dlsym(shim, "malloc_usable_size")};
  free_fn shim_free;
  realloc_fn shim_realloc;
  usable_fn shim_usable;
  memcpy(&shim_free, &sym[0], sizeof shim_free);
  memcpy(&shim_realloc, &sym[1], sizeof shim_realloc);
  memcpy(&shim_usable, &sym[2], sizeof shim_usable);
  int failures = 0;
  if (shim_usable(early[0]) < 100) failures++, fprintf(stderr, "usable size of an early pointer\n");
  shim_free(early[0]);
  char* moved = shim_realloc(early[1], 5000);
  if (moved == NULL || moved[99] != 'b') failures++, fprintf(stderr, "realloc lost the content\n");
  shim_free(moved);
  int on_stack = 0;
  shim_free(&on_stack);
  free(early[2]);
  char text[4096] = {0};
  FILE* f = fopen(log, "r");
  const size_t n = f != NULL ? fread(text, 1, sizeof text - 1, f) : 0;
  if (f != NULL) fclose(f);
  remove(log);
  /* Exactly one report: the stack pointer's. */
  if (n == 0 || strncmp(text, "spanheap: foreign_free: ", 24) != 0 ||
      strchr(text, '\n') != text + n - 1) {
    failures++;
    fprintf(stderr, "expected exactly one foreign_free report, got:\n%s", text);
  }
  if (failures == 0) puts("early pointers handed to the next allocator; foreign_free reported");
  return failures == 0 ? 0 : 1;
}
