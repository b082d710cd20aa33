import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { FeatureVector } from "./features";
export declare const protobufPackage = "aitrading.ml";
export declare const protobufFileName = "proto/ml/predictions.proto";
/** Model predictions and the request that asks for one. */
export declare enum Direction {
    DIRECTION_UNSPECIFIED = 0,
    DIRECTION_UP = 1,
    DIRECTION_DOWN = 2,
    DIRECTION_FLAT = 3,
    UNRECOGNIZED = -1
}
export declare function directionFromJSON(object: any): Direction;
export declare function directionToJSON(object: Direction): string;
export interface PredictionRequest {
    requestId: string;
    modelName: string;
    /** empty = the serving default */
    modelVersion: string;
    features: FeatureVector | undefined;
    tenantId: string;
    userId: string;
}
export interface Prediction {
    predictionId: string;
    requestId: string;
    modelName: string;
    modelVersion: string;
    symbol: string;
    /** Unix ms the prediction was made */
    timestamp: string;
    /** how far ahead it predicts */
    horizonMs: string;
    predictedValue: number;
    direction: Direction;
    /** 0..1 */
    confidence: number;
    classProbabilities: {
        [key: string]: number;
    };
    featureSetVersion: string;
}
export interface Prediction_ClassProbabilitiesEntry {
    key: string;
    value: number;
}
export declare const PredictionRequest: MessageFns<PredictionRequest>;
export declare const Prediction: MessageFns<Prediction>;
export declare const Prediction_ClassProbabilitiesEntry: MessageFns<Prediction_ClassProbabilitiesEntry>;
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
