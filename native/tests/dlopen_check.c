// Loads a vaecf addon without Node (for a platform whose Node cannot run here: arm64 under qemu-user):
// every library the addon needs must resolve. N-API functions are Node's: this program provides them
// (-rdynamic) as stubs, napi_module_register here (the addon calls it while it loads) and the rest
// generated from the addon's undefined symbols (scripts/arm64-prebuild.sh); none of those is called.
// usage: dlopen_check ADDON.node   (exit 0 and "loaded" when it loads)
#include <dlfcn.h>
#include <stdio.h>

void napi_module_register(void* module) { (void)module; }

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s ADDON.node\n", argv[0]);
    return 2;
  }
  void* handle = dlopen(argv[1], RTLD_LAZY | RTLD_LOCAL);
  if (!handle) {
    fprintf(stderr, "dlopen_check: %s\n", dlerror());
    return 1;
  }
  printf("dlopen_check: %s loaded, every library it needs resolved\n", argv[1]);
  return 0;
}
