#include "netagent/nft/fake.h"
