/** How the tracer may lower kernels; a module of its own so that public types reach no ONNX protobuf declarations. */
export interface LoweringOptions {
  /**
   * The NCHWc block size of the ONNX Runtime build that will run the graph (see BlockedLayout), when
   * its com.microsoft.nchwc kernels may be used. Without it the graph is portable standard ONNX.
   */
  readonly nchwcBlockSize?: number;
}
