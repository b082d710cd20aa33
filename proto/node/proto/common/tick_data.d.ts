import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
export declare const protobufPackage = "aitrading.common";
export declare const protobufFileName = "proto/common/tick_data.proto";
/**
 * Market data: one quote/trade tick and the batches data-bridge publishes.
 *
 * Every int64 timestamp on the platform is Unix epoch time in milliseconds (UTC).
 * Prices are doubles as delivered by the broker feeds; quantities likewise.
 */
export interface TickData {
    /** instrument, e.g. "EURUSD" */
    symbol: string;
    bid: number;
    ask: number;
    /** last traded price, 0 when the feed has none */
    last: number;
    volume: number;
    /** exchange/broker time of the tick */
    timestamp: string;
    /** feed or broker that produced it */
    source: string;
    /** ask - bid as computed by the source */
    spread: number;
    /** when our ingestion saw it (latency tracking) */
    receivedAt: string;
}
export interface BatchTickData {
    ticks: TickData[];
    batchId: string;
    /** when the batch was closed */
    batchTimestamp: string;
    source: string;
    /** owner of a user-scoped stream, empty for shared feeds */
    userId: string;
    tenantId: string;
}
export declare const TickData: MessageFns<TickData>;
export declare const BatchTickData: MessageFns<BatchTickData>;
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
