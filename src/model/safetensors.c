/* placeholder, replaced below */
#include "model.h"
kvattn_status kv_load_safetensors(const char *path, kvattn_model *m) {
    (void)m;
    return kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: safetensors loading is not implemented yet", path);
}
