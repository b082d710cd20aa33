import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
export declare const protobufPackage = "aitrading.common";
export declare const protobufFileName = "proto/common/base.proto";
/**
 * The envelope every message on the platform's buses travels in.
 *
 * `payload` holds the serialized inner message; `message_type` names it so a consumer
 * knows which schema to parse it with (see MessageTypes in the Python helpers).
 */
export interface MessageEnvelope {
    /** "tick_data", "user_event", "trading_signal" */
    messageType: string;
    /** For Kafka partitioning */
    userId: string;
    /** Actual protobuf message */
    payload: Uint8Array;
    /** For message ordering */
    timestamp: string;
    /** Originating service */
    serviceSource: string;
    /** Request tracing */
    correlationId: string;
}
export declare const MessageEnvelope: MessageFns<MessageEnvelope>;
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
