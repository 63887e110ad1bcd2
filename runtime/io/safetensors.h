/* safetensors.h — reading a model's parameters from safetensors bytes in memory (the file calls
 * are public: cldp_model_save_safetensors / cldp_model_load_safetensors). Internal: the fuzz
 * target reaches the parser here. */
#ifndef CLDP_SAFETENSORS_H
#define CLDP_SAFETENSORS_H

#include "model.h"

/* Validates buf (size bytes) as a safetensors file of m's tensors and only then writes all of
 * m's parameters to params (m->nparams floats); CLDP_ERR_FORMAT naming `what` and the fault. */
cldp_status cldp_safetensors_parse(const cldp_model *m, const unsigned char *buf, size_t size, const char *what, float *params);

#endif
