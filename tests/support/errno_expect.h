// EXPECT_ERRNO(call, err): the call returns -1 and sets errno to err. errno
// is cleared first, so a stale value cannot pass.
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#define EXPECT_ERRNO(expr, err)                                        \
  do {                                                                \
    errno = 0;                                                        \
    EXPECT_EQ((expr), -1) << #expr;                                   \
    EXPECT_EQ(errno, (err)) << #expr << ": " << std::strerror(errno); \
  } while (0)
