import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
export declare const protobufPackage = "aitrading.trading";
export declare const protobufFileName = "proto/trading/orders.proto";
/** Orders and their execution reports. */
export declare enum OrderSide {
    ORDER_SIDE_UNSPECIFIED = 0,
    ORDER_SIDE_BUY = 1,
    ORDER_SIDE_SELL = 2,
    UNRECOGNIZED = -1
}
export declare function orderSideFromJSON(object: any): OrderSide;
export declare function orderSideToJSON(object: OrderSide): string;
export declare enum OrderType {
    ORDER_TYPE_UNSPECIFIED = 0,
    ORDER_TYPE_MARKET = 1,
    ORDER_TYPE_LIMIT = 2,
    ORDER_TYPE_STOP = 3,
    ORDER_TYPE_STOP_LIMIT = 4,
    UNRECOGNIZED = -1
}
export declare function orderTypeFromJSON(object: any): OrderType;
export declare function orderTypeToJSON(object: OrderType): string;
export declare enum TimeInForce {
    TIME_IN_FORCE_UNSPECIFIED = 0,
    /** TIME_IN_FORCE_GTC - good till cancelled */
    TIME_IN_FORCE_GTC = 1,
    /** TIME_IN_FORCE_IOC - immediate or cancel */
    TIME_IN_FORCE_IOC = 2,
    /** TIME_IN_FORCE_FOK - fill or kill */
    TIME_IN_FORCE_FOK = 3,
    TIME_IN_FORCE_DAY = 4,
    UNRECOGNIZED = -1
}
export declare function timeInForceFromJSON(object: any): TimeInForce;
export declare function timeInForceToJSON(object: TimeInForce): string;
export declare enum OrderStatus {
    ORDER_STATUS_UNSPECIFIED = 0,
    ORDER_STATUS_PENDING = 1,
    ORDER_STATUS_ACCEPTED = 2,
    ORDER_STATUS_PARTIALLY_FILLED = 3,
    ORDER_STATUS_FILLED = 4,
    ORDER_STATUS_CANCELLED = 5,
    ORDER_STATUS_REJECTED = 6,
    ORDER_STATUS_EXPIRED = 7,
    UNRECOGNIZED = -1
}
export declare function orderStatusFromJSON(object: any): OrderStatus;
export declare function orderStatusToJSON(object: OrderStatus): string;
export interface Order {
    orderId: string;
    /** idempotency key chosen by the submitter */
    clientOrderId: string;
    userId: string;
    tenantId: string;
    symbol: string;
    side: OrderSide;
    type: OrderType;
    quantity: number;
    /** limit price; 0 for market orders */
    price: number;
    stopPrice: number;
    timeInForce: TimeInForce;
    status: OrderStatus;
    filledQuantity: number;
    averageFillPrice: number;
    /** the TradingSignal that caused it, if any */
    signalId: string;
    /** Unix ms */
    createdAt: string;
    /** Unix ms */
    updatedAt: string;
    accountId: string;
}
export interface ExecutionReport {
    executionId: string;
    orderId: string;
    status: OrderStatus;
    /** of this execution */
    filledQuantity: number;
    fillPrice: number;
    commission: number;
    rejectReason: string;
    /** Unix ms */
    timestamp: string;
}
export declare const Order: MessageFns<Order>;
export declare const ExecutionReport: MessageFns<ExecutionReport>;
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
