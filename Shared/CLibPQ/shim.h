#ifndef ROOTCAUSES_CLIBPQ_SHIM_H
#define ROOTCAUSES_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
