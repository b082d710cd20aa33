import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
export declare const protobufPackage = "aitrading.ml";
export declare const protobufFileName = "proto/ml/features.proto";
/** Feature vectors computed from market data for the ML services. */
export interface FeatureVector {
    symbol: string;
    /** e.g. "M5" */
    timeframe: string;
    /** Unix ms of the bar/tick the features describe */
    timestamp: string;
    features: {
        [key: string]: number;
    };
    /** name of the feature definition set */
    featureSet: string;
    featureSetVersion: string;
    /** producing service */
    source: string;
}
export interface FeatureVector_FeaturesEntry {
    key: string;
    value: number;
}
export interface FeatureBatch {
    vectors: FeatureVector[];
    batchId: string;
    batchTimestamp: string;
}
export declare const FeatureVector: MessageFns<FeatureVector>;
export declare const FeatureVector_FeaturesEntry: MessageFns<FeatureVector_FeaturesEntry>;
export declare const FeatureBatch: MessageFns<FeatureBatch>;
type Builtin = Date | Function | Uint8Array | string | number | boolean | undefined;
export type DeepPartial<T> = T extends Builtin ? T : T extends globalThis.Array<infer U> ? globalThis.Array<DeepPartial<U>> : T extends ReadonlyArray<infer U> ? ReadonlyArray<DeepPartial<U>> : T extends {} ? {
    [K in keyof T]?: DeepPartial<T[K]>;
} : Partial<T>;
type KeysOfUnion<T> = T extends T ? keyof T : never;
export type Exact<P, I extends P> = P extends Builtin ? P : P & {
    [K in keyof P]: Exact<P[K], I[K]>;
} & {
    [K in Exclude<keyof I, KeysOfUnion<P>>]: never;
};
export interface MessageFns<T> {
    encode(message: T, writer?: BinaryWriter): BinaryWriter;
    decode(input: BinaryReader | Uint8Array, length?: number): T;
    fromJSON(object: any): T;
    toJSON(message: T): unknown;
    create<I extends Exact<DeepPartial<T>, I>>(base?: I): T;
    fromPartial<I extends Exact<DeepPartial<T>, I>>(object: I): T;
}
export {};
