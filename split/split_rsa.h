#ifndef SPK_SPLIT_RSA_H
#define SPK_SPLIT_RSA_H

/* Included by split/split.h: RSA keys, records and sealed shares. */

#endif
