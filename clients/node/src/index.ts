/** The designsearch public API for Node: generated messages and stub, plus the connect helper. */
export * from "./client";
export * from "./generated/designsearch/v1/gateway";
export { BoundingBox, Crop, CropKind, DesignRecord, Domain, Filters, Image, Vector } from "./generated/designsearch/v1/common";
export { Status } from "./generated/google/rpc/status";
