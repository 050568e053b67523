// What every kernel source includes: TensorFlow's op and kernel registration,
// the intra-op work sharder (Eigen's thread pool, hence EIGEN_USE_THREADS
// before any Eigen header), and the TensorFlow names the sources use.
#ifndef KERAS_ELECTRA_KERNEL_H_
#define KERAS_ELECTRA_KERNEL_H_

#define EIGEN_USE_THREADS

#include <cmath>
#include <cstdint>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/util/work_sharder.h"

namespace keras_electra {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

}  // namespace keras_electra

#endif  // KERAS_ELECTRA_KERNEL_H_
